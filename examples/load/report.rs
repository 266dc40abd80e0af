//! Output: one table row and one JSON line per phase, and the side-by-side
//! comparison of two servers (`load compare`).

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::engine::Window;

/// Collects the phases of one run.
pub(crate) struct Report {
    /// Fields every JSON line carries (server, scenario, rep, clients, tls).
    pub(crate) common: Map<String, Value>,
    pub(crate) lines: Vec<Value>,
    json_out: Option<fs::File>,
    header_done: bool,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    pub(crate) fn new(common: Map<String, Value>, json_out: Option<&Path>) -> Result<Self, String> {
        let json_out = match json_out {
            Some(p) => Some(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            ),
            None => None,
        };
        Ok(Self {
            common,
            lines: Vec::new(),
            json_out,
            header_done: false,
        })
    }

    /// Records a phase: its window plus phase-specific fields; `detail` is
    /// the free text of the table row.
    pub(crate) fn phase(&mut self, phase: &str, w: &Window, extra: Value, detail: &str) {
        let (s0, s1) = w.server;
        let (m0, m1) = w.me;
        let cpu_ms = s1.cpu_ms.saturating_sub(s0.cpu_ms);
        let my_ms = m1.cpu_ms.saturating_sub(m0.cpu_ms);
        let pct = |ms: u64| {
            if w.secs > 0.0 {
                ms as f64 / 10.0 / w.secs
            } else {
                0.0
            }
        };
        let mut line = self.common.clone();
        line.insert("phase".into(), json!(phase));
        line.insert("secs".into(), json!(round3(w.secs)));
        line.insert("rss_start_kib".into(), json!(s0.rss_kib));
        line.insert("rss_end_kib".into(), json!(s1.rss_kib));
        line.insert("hwm_end_kib".into(), json!(s1.hwm_kib));
        line.insert("server_cpu_ms".into(), json!(cpu_ms));
        line.insert("server_cpu_pct".into(), json!(round3(pct(cpu_ms))));
        line.insert("loadgen_cpu_ms".into(), json!(my_ms));
        line.insert("loadgen_cpu_pct".into(), json!(round3(pct(my_ms))));
        // CPU used by everything else on the machine (other engineers'
        // builds...): a busy machine makes latencies and rates unreliable.
        let other = m1
            .sys_busy_ms
            .saturating_sub(m0.sys_busy_ms)
            .saturating_sub(cpu_ms + my_ms);
        line.insert("other_cpu_pct".into(), json!(round3(pct(other))));
        if let Value::Object(extra) = extra {
            line.extend(extra);
        }
        let line = Value::Object(line);
        if !self.header_done {
            self.header_done = true;
            println!(
                "{:<10} {:>8} {:>17} {:>8} {:>9} {:>7} {:>7} {:>7}  details",
                "phase",
                "secs",
                "RSS MiB start→end",
                "HWM MiB",
                "srv cpu",
                "srv %",
                "gen %",
                "other %"
            );
        }
        println!(
            "{:<10} {:>8.2} {:>8.2} → {:>6.2} {:>8.2} {:>7}ms {:>7.1} {:>7.1} {:>7.1}  {detail}",
            phase,
            w.secs,
            mib(s0.rss_kib),
            mib(s1.rss_kib),
            mib(s1.hwm_kib),
            cpu_ms,
            pct(cpu_ms),
            pct(my_ms),
            pct(other)
        );
        if let Some(f) = &mut self.json_out {
            let _ = writeln!(f, "{line}");
        }
        self.lines.push(line);
    }

    /// Prints the JSON lines (after the table).
    pub(crate) fn print_json(&self) {
        for l in &self.lines {
            println!("{l}");
        }
    }
}

/// Rounds to three decimals for readable JSON.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One figure of the comparison table.
struct Figure {
    title: &'static str,
    scenario: &'static str,
    phase: &'static str,
    metric: &'static str,
    scale: f64,
    unit: &'static str,
    documented: &'static str,
    goal: &'static str,
}

const FIGURES: &[Figure] = &[
    Figure {
        title: "RSS just after start",
        scenario: "idle-plain",
        phase: "start",
        metric: "rss_end_kib",
        scale: 1.0 / 1024.0,
        unit: "MiB",
        documented: "11.5 MiB",
        goal: "≤ 1 MiB",
    },
    Figure {
        title: "RSS with idle TLS clients",
        scenario: "tls",
        phase: "idle",
        metric: "rss_end_kib",
        scale: 1.0 / 1024.0,
        unit: "MiB",
        documented: "103 MiB (1,000)",
        goal: "≤ 16 MiB",
    },
    Figure {
        title: "RSS with idle plain clients",
        scenario: "idle-plain",
        phase: "idle",
        metric: "rss_end_kib",
        scale: 1.0 / 1024.0,
        unit: "MiB",
        documented: "22 MiB (5,000)",
        goal: "≤ 8 MiB",
    },
    Figure {
        title: "server CPU, idle plain clients",
        scenario: "idle-plain",
        phase: "idle",
        metric: "server_cpu_pct",
        scale: 1.0,
        unit: "% of a core",
        documented: "90 % (5,000)",
        goal: "≤ 3 %",
    },
    Figure {
        title: "server CPU per 1,000 echo replies, plain",
        scenario: "echo-plain",
        phase: "echo",
        metric: "server_cpu_ms_per_1000",
        scale: 1.0,
        unit: "ms",
        documented: "9.7 ms",
        goal: "≤ 2 ms",
    },
    Figure {
        title: "server CPU per 1,000 echo replies, TLS",
        scenario: "tls",
        phase: "echo",
        metric: "server_cpu_ms_per_1000",
        scale: 1.0,
        unit: "ms",
        documented: "29 ms",
        goal: "≤ 6 ms",
    },
    Figure {
        title: "echo replies per second (closed loop, plain)",
        scenario: "echo-plain",
        phase: "echo",
        metric: "replies_per_s",
        scale: 1.0,
        unit: "/s",
        documented: "",
        goal: "",
    },
    Figure {
        title: "echo p99 at fixed rate",
        scenario: "echo-plain",
        phase: "latency",
        metric: "p99_ms",
        scale: 1.0,
        unit: "ms",
        documented: "5.5 ms",
        goal: "≤ 0.5 ms",
    },
    Figure {
        title: "echo p50 at fixed rate",
        scenario: "echo-plain",
        phase: "latency",
        metric: "p50_ms",
        scale: 1.0,
        unit: "ms",
        documented: "",
        goal: "",
    },
    Figure {
        title: "vote storm, clusters split at once: last vote",
        scenario: "echo-plain",
        phase: "storm",
        metric: "split_last_ms",
        scale: 1.0,
        unit: "ms",
        documented: "71 ms (500)",
        goal: "≤ 10 ms",
    },
    Figure {
        title: "vote storm, heal: last vote",
        scenario: "echo-plain",
        phase: "storm",
        metric: "heal_last_ms",
        scale: 1.0,
        unit: "ms",
        documented: "",
        goal: "",
    },
    Figure {
        title: "clients connecting at once: time to all set up",
        scenario: "burst-plain",
        phase: "setup",
        metric: "secs",
        scale: 1.0,
        unit: "s",
        documented: "> 100 s (1,000)",
        goal: "≤ 1 s",
    },
    Figure {
        title: "clients connecting at once: dropped",
        scenario: "burst-plain",
        phase: "setup",
        metric: "dropped",
        scale: 1.0,
        unit: "",
        documented: "157",
        goal: "0",
    },
    Figure {
        title: "TLS clients set up per second",
        scenario: "tls",
        phase: "setup",
        metric: "setup_per_s",
        scale: 1.0,
        unit: "/s",
        documented: "98",
        goal: "≥ 1,000",
    },
];

struct Stat {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
    incomplete: usize,
    clients: Option<u64>,
}

fn stat(lines: &[Value], server: &str, f: &Figure) -> Option<Stat> {
    let mut xs = Vec::new();
    let mut incomplete = 0;
    let mut clients = None;
    for l in lines {
        if l["server"] != server || l["scenario"] != f.scenario || l["phase"] != f.phase {
            continue;
        }
        if let Some(x) = l[f.metric].as_f64() {
            xs.push(x * f.scale);
            if l["complete"] == false {
                incomplete += 1;
            }
            clients = clients.or(l["clients"].as_u64());
        }
    }
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        f64::midpoint(xs[n / 2 - 1], xs[n / 2])
    };
    Some(Stat {
        median,
        min: xs[0],
        max: xs[n - 1],
        n,
        incomplete,
        clients,
    })
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn cell(s: Option<&Stat>, unit: &str) -> String {
    let Some(s) = s else {
        return "n/a".into();
    };
    let mut out = format!("{} {unit}", num(s.median));
    if s.n > 1 {
        let _ = write!(out, " ({}–{}, n={})", num(s.min), num(s.max), s.n);
    }
    if s.incomplete > 0 {
        let _ = write!(out, " [{} of {} incomplete]", s.incomplete, s.n);
    }
    out.trim().to_owned()
}

/// Reads the JSON lines of several runs and prints the comparison table.
/// Returns the summary as JSON.
pub(crate) fn compare(path: &Path, reference: &str, ours: &str) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    println!(
        "| figure | clients | reference, documented | {reference}: median (min–max) | {ours}: median (min–max) | ratio {ours}/{reference} | goal |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for f in FIGURES {
        let r = stat(&lines, reference, f);
        let o = stat(&lines, ours, f);
        let ratio = match (&r, &o) {
            (Some(r), Some(o)) if r.median != 0.0 => Some(o.median / r.median),
            _ => None,
        };
        let clients = if f.phase == "start" {
            "0".to_owned()
        } else {
            r.as_ref()
                .and_then(|s| s.clients)
                .or(o.as_ref().and_then(|s| s.clients))
                .map_or_else(String::new, |c| c.to_string())
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.title,
            clients,
            f.documented,
            cell(r.as_ref(), f.unit),
            cell(o.as_ref(), f.unit),
            ratio.map_or_else(|| "–".into(), |x| format!("{x:.3}")),
            f.goal
        );
        let js = |s: &Option<Stat>| {
            s.as_ref().map(|s| {
                json!({"median": s.median, "min": s.min, "max": s.max, "n": s.n,
                       "incomplete": s.incomplete})
            })
        };
        rows.push(json!({
            "figure": f.title, "scenario": f.scenario, "phase": f.phase, "metric": f.metric,
            "unit": f.unit, "clients": clients, "documented": f.documented, "goal": f.goal,
            reference: js(&r), ours: js(&o), "ratio": ratio,
        }));
    }
    let mut other: Vec<f64> = lines
        .iter()
        .filter(|l| l["secs"].as_f64().is_some_and(|s| s >= 1.0))
        .filter_map(|l| l["other_cpu_pct"].as_f64())
        .collect();
    other.sort_by(f64::total_cmp);
    if let (Some(max), false) = (other.last(), other.is_empty()) {
        println!(
            "\nOther processes on the machine used {:.0} % of a core (median over phases; max {:.0} %) \
             while the phases ran.",
            other[other.len() / 2],
            max
        );
    }
    Ok(json!({ "figures": rows, "runs": lines }))
}
