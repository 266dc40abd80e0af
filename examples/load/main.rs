//! Load generator for QNetd servers: N simulated `corosync-qdevice` clients
//! in 2-node ffsplit clusters on one single-threaded `mio` loop, measuring
//! the server's memory and CPU from `/proc` around each phase.
//!
//! ```text
//! cargo run --release --example load -- [OPTIONS] [-- SERVER COMMAND...]
//! cargo run --release --example load -- pki --tls-dir DIR
//! cargo run --release --example load -- compare RUNS.jsonl [--ref L] [--ours L] [--out F]
//! ```
//!
//! It is an example rather than a `[[bench]]` so that `cargo bench` and
//! `cargo test --all-targets` never start it (it needs a server), while
//! `cargo run --release --example load` builds it with the same release
//! profile as the server and with the dev-dependencies (hdrhistogram).
//!
//! Phases (`--phases`, in this order): `setup` (connect and hand-shake all
//! clients, `--connect-concurrency` at a time), `idle` (heartbeats only),
//! `echo` (closed loop: each client keeps one echo outstanding), `latency`
//! (fixed rate spread over the clients, hdrhistogram percentiles), `storm`
//! (every cluster splits at once, then heals; time to the last decision) and
//! `rounds` (K sequential echoes per client, for callgrind). Before the
//! phases, when the server was started by this program, a `start` phase
//! records its memory just after it listens.
//!
//! Exit status: 0 when the server behaved, 1 on any protocol error (an
//! unexpected message, SERVER_ERROR, a disconnect, a wrong echo, a missing
//! decision) or dropped connection, 2 on a usage or set-up error.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on stdout/stderr"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the load generator is I/O code: it measures wall time"
)]
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "statistics of counts far below 2^52"
)]

mod engine;
mod procfs;
mod report;
mod tls;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use serde_json::{Map, json};

use crate::engine::{Engine, Window};
use crate::report::{Report, round3};

const USAGE: &str = "\
usage: load [OPTIONS] [-- SERVER COMMAND...]
       load pki --tls-dir DIR
       load compare RUNS.jsonl [--ref LABEL] [--ours LABEL] [--out SUMMARY.json]

  --host IP                 server address (127.0.0.1)
  --port N                  server port (5403)
  --clients N               simulated qdevices, 2 per cluster (1000)
  --pid PID|NAME            server process to sample (default: the one started)
  --phases LIST             setup,idle,echo,latency,storm[,rounds]
  --connect-concurrency N   clients handshaking at once during set-up (8)
  --setup-timeout S         give up set-up after S seconds (60)
  --retry-delay-ms MS       reconnect a dropped client after [0, MS) (1000)
  --connect-timeout MS      drop and retry an attempt not set up by then (8000)
  --heartbeat MS            heartbeat interval sent in INIT (8000)
  --no-heartbeats           never send heartbeat echoes
  --idle S                  idle phase length (10)
  --echo S                  closed-loop phase length (5)
  --echo-depth N            echoes outstanding per client (1)
  --latency S               fixed-rate phase length (10)
  --rate N                  fixed-rate requests per second (10000)
  --storms N                split+heal cycles (3)
  --storm-timeout S         per split or heal (10)
  --rounds K                rounds of one echo per client, one at a time (10)
  --tls                     STARTTLS + TLS with a client cert per cluster
  --tls-dir DIR             the run's CA/NSS db/PEM dir (created if missing)
  --start-timeout S         wait for a started server to listen (10)
  --settle-ms MS            wait after it listens before sampling (300)
  --server-log FILE         started server's stdout+stderr (default: discarded)
  --label L  --scenario S  --rep N   tags of the JSON lines
  --json-out FILE           append the JSON lines to FILE
  --cluster-prefix P        cluster names P00000, P00001, ... (lg)
  --seed N                  for the heartbeat phases and reconnect delays
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Idle,
    Echo,
    Latency,
    Storm,
    Rounds,
}

impl Phase {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "setup" => Self::Setup,
            "idle" => Self::Idle,
            "echo" => Self::Echo,
            "latency" => Self::Latency,
            "storm" => Self::Storm,
            "rounds" => Self::Rounds,
            _ => return Err(format!("unknown phase {s:?}")),
        })
    }
}

struct Args {
    host: IpAddr,
    port: u16,
    clients: usize,
    pid: Option<String>,
    phases: Vec<Phase>,
    concurrency: usize,
    setup_timeout: Duration,
    retry_delay: Duration,
    connect_timeout: Duration,
    heartbeat_ms: u32,
    heartbeats: bool,
    idle: Duration,
    echo: Duration,
    echo_depth: u32,
    latency: Duration,
    rate: u32,
    storms: u32,
    storm_timeout: Duration,
    rounds: u32,
    tls: bool,
    tls_dir: Option<PathBuf>,
    start_timeout: Duration,
    settle: Duration,
    server_log: Option<PathBuf>,
    label: String,
    scenario: String,
    rep: u32,
    json_out: Option<PathBuf>,
    cluster_prefix: String,
    seed: u64,
    server_cmd: Vec<OsString>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5403,
            clients: 1000,
            pid: None,
            phases: vec![
                Phase::Setup,
                Phase::Idle,
                Phase::Echo,
                Phase::Latency,
                Phase::Storm,
            ],
            concurrency: 8,
            setup_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_millis(1000),
            // corosync-qdevice: 0.8 * quorum.device.timeout (10 s).
            connect_timeout: Duration::from_millis(8000),
            heartbeat_ms: 8000,
            heartbeats: true,
            idle: Duration::from_secs(10),
            echo: Duration::from_secs(5),
            echo_depth: 1,
            latency: Duration::from_secs(10),
            rate: 10_000,
            storms: 3,
            storm_timeout: Duration::from_secs(10),
            rounds: 10,
            tls: false,
            tls_dir: None,
            start_timeout: Duration::from_secs(10),
            settle: Duration::from_millis(300),
            server_log: None,
            label: "server".into(),
            scenario: "run".into(),
            rep: 1,
            json_out: None,
            cluster_prefix: "lg".into(),
            seed: 0x5eed,
            server_cmd: Vec::new(),
        }
    }
}

enum Cmd {
    Run(Box<Args>),
    Pki(PathBuf),
    Compare {
        input: PathBuf,
        reference: String,
        ours: String,
        out: Option<PathBuf>,
    },
}

fn secs(v: OsString) -> Result<Duration, lexopt::Error> {
    use lexopt::ValueExt as _;
    let s: f64 = v.parse()?;
    Duration::try_from_secs_f64(s).map_err(|e| lexopt::Error::Custom(Box::new(e)))
}

fn parse_args() -> Result<Cmd, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = Args::default();
    let mut p = lexopt::Parser::from_env();
    let mut sub: Option<String> = None;
    let mut positional: Vec<OsString> = Vec::new();
    let (mut reference, mut ours, mut out) = ("reference".to_owned(), "ours".to_owned(), None);
    while let Some(arg) = p.next()? {
        match arg {
            Long("host") => a.host = p.value()?.parse()?,
            Long("port") => a.port = p.value()?.parse()?,
            Long("clients") => a.clients = p.value()?.parse()?,
            Long("pid") => a.pid = Some(p.value()?.string()?),
            Long("phases") => {
                a.phases = p
                    .value()?
                    .string()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(Phase::parse)
                    .collect::<Result<_, _>>()
                    .map_err(lexopt::Error::from)?;
            }
            Long("connect-concurrency") => a.concurrency = p.value()?.parse()?,
            Long("setup-timeout") => a.setup_timeout = secs(p.value()?)?,
            Long("retry-delay-ms") => {
                a.retry_delay = Duration::from_millis(p.value()?.parse()?);
            }
            Long("connect-timeout") => {
                a.connect_timeout = Duration::from_millis(p.value()?.parse()?);
            }
            Long("heartbeat") => a.heartbeat_ms = p.value()?.parse()?,
            Long("no-heartbeats") => a.heartbeats = false,
            Long("idle") => a.idle = secs(p.value()?)?,
            Long("echo") => a.echo = secs(p.value()?)?,
            Long("echo-depth") => a.echo_depth = p.value()?.parse()?,
            Long("latency") => a.latency = secs(p.value()?)?,
            Long("rate") => a.rate = p.value()?.parse()?,
            Long("storms") => a.storms = p.value()?.parse()?,
            Long("storm-timeout") => a.storm_timeout = secs(p.value()?)?,
            Long("rounds") => a.rounds = p.value()?.parse()?,
            Long("tls") => a.tls = true,
            Long("tls-dir") => a.tls_dir = Some(p.value()?.into()),
            Long("start-timeout") => a.start_timeout = secs(p.value()?)?,
            Long("settle-ms") => a.settle = Duration::from_millis(p.value()?.parse()?),
            Long("server-log") => a.server_log = Some(p.value()?.into()),
            Long("label") => a.label = p.value()?.string()?,
            Long("scenario") => a.scenario = p.value()?.string()?,
            Long("rep") => a.rep = p.value()?.parse()?,
            Long("json-out") => a.json_out = Some(p.value()?.into()),
            Long("cluster-prefix") => a.cluster_prefix = p.value()?.string()?,
            Long("seed") => a.seed = p.value()?.parse()?,
            Long("ref") => reference = p.value()?.string()?,
            Long("ours") => ours = p.value()?.string()?,
            Long("out") => out = Some(PathBuf::from(p.value()?)),
            Short('h') | Long("help") => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            Value(v) => {
                if sub.is_none()
                    && positional.is_empty()
                    && (v == "pki" || v == "compare" || v == "run")
                {
                    sub = Some(v.string()?);
                } else if sub.as_deref() == Some("compare") {
                    positional.push(v);
                } else {
                    // The server command: everything from here on.
                    a.server_cmd.push(v);
                    a.server_cmd.extend(p.raw_args()?);
                }
            }
            _ => return Err(arg.unexpected()),
        }
    }
    match sub.as_deref() {
        Some("pki") => Ok(Cmd::Pki(a.tls_dir.ok_or("pki needs --tls-dir DIR")?)),
        Some("compare") => Ok(Cmd::Compare {
            input: positional
                .pop()
                .map(PathBuf::from)
                .ok_or("compare needs a JSON lines file")?,
            reference,
            ours,
            out,
        }),
        _ => Ok(Cmd::Run(Box::new(a))),
    }
}

fn main() -> ExitCode {
    let cmd = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("load: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let res = match cmd {
        Cmd::Pki(dir) => tls::Pki::load_or_create(&dir).map(|_| {
            println!("PKI ready in {}", dir.display());
            true
        }),
        Cmd::Compare {
            input,
            reference,
            ours,
            out,
        } => report::compare(&input, &reference, &ours).and_then(|summary| {
            if let Some(out) = out {
                std::fs::write(&out, format!("{summary:#}\n"))
                    .map_err(|e| format!("{}: {e}", out.display()))?;
            }
            Ok(true)
        }),
        Cmd::Run(a) => run(&a),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::from(2)
        }
    }
}

/// One run: start (or find) the server, run the phases, report.
fn run(a: &Args) -> Result<bool, String> {
    if a.clients == 0 || !a.clients.is_multiple_of(2) {
        return Err("--clients must be a positive even number (2-node clusters)".into());
    }
    if let Some(limit) = procfs::open_files_limit()
        && limit < a.clients as u64 + 64
    {
        return Err(format!(
            "open files limit {limit} is too low for {} clients: raise `ulimit -n`",
            a.clients
        ));
    }
    let addr = SocketAddr::new(a.host, a.port);
    let tls = if a.tls {
        let dir = a
            .tls_dir
            .clone()
            .ok_or("--tls needs --tls-dir DIR (the server must use the same CA)")?;
        let pki = tls::Pki::load_or_create(&dir)?;
        let configs = (0..a.clients / 2)
            .map(|c| pki.client_config(&format!("{}{c:05}", a.cluster_prefix)))
            .collect::<Result<Vec<_>, _>>()?;
        Some((configs, tls::server_name(a.host)))
    } else {
        None
    };

    let mut common = Map::new();
    common.insert("server".into(), json!(a.label));
    common.insert("scenario".into(), json!(a.scenario));
    common.insert("rep".into(), json!(a.rep));
    common.insert("clients".into(), json!(a.clients));
    common.insert("tls".into(), json!(a.tls));
    common.insert("heartbeat_ms".into(), json!(a.heartbeat_ms));
    let mut report = Report::new(common, a.json_out.as_deref())?;

    let mut spawned = None;
    if !a.server_cmd.is_empty() {
        if procfs::is_listening(addr) {
            return Err(format!("something already listens on {addr}"));
        }
        let mut s = procfs::Spawned::start(&a.server_cmd, a.server_log.as_deref())?;
        if let Err(e) = s.wait_listening(addr, a.start_timeout) {
            s.stop(Duration::from_secs(5));
            return Err(e);
        }
        spawned = Some(s);
    }
    let pid = match (&a.pid, &spawned) {
        (Some(p), _) => Some(
            p.parse()
                .ok()
                .or_else(|| procfs::find_pid(p))
                .ok_or_else(|| format!("no single process named {p}"))?,
        ),
        (None, Some(s)) => Some(s.pid()),
        (None, None) => None,
    };
    let mut engine = Engine::new(engine::Config {
        addr,
        clients: a.clients,
        cluster_prefix: a.cluster_prefix.clone(),
        heartbeat_ms: a.heartbeat_ms,
        heartbeats: a.heartbeats,
        retry_delay: a.retry_delay,
        connect_timeout: a.connect_timeout,
        tls,
        server_pid: pid,
        seed: a.seed,
    })
    .map_err(|e| format!("poll: {e}"))?;
    let ok = phases(a, &mut engine, &mut report, spawned.as_mut());
    // Stop the server before closing the clients, so that it does not
    // spend its last moments (or a callgrind profile) on disconnects.
    let server_exit = spawned.map(|s| s.stop(Duration::from_secs(30)));
    engine.close_all();
    if let Some(Some(st)) = server_exit
        && !st.success()
    {
        eprintln!("note: the server exited with {st}");
    }
    report.print_json();
    Ok(ok)
}

fn phases(
    a: &Args,
    engine: &mut Engine,
    report: &mut Report,
    mut spawned: Option<&mut procfs::Spawned>,
) -> bool {
    if spawned.is_some() {
        thread::sleep(a.settle);
        let s = engine.sample();
        let w = Window {
            secs: 0.0,
            server: (s.0, s.0),
            me: (s.1, s.1),
        };
        report.phase("start", &w, json!({}), "server just started");
    }

    let mut all_ok = true;
    for &phase in &a.phases {
        let before = engine.ctx.stats.clone();
        match phase {
            Phase::Setup => {
                let (w, ok) = engine.setup(a.concurrency, a.setup_timeout);
                let s = &engine.ctx.stats;
                let dropped = s.dropped - before.dropped;
                let per_s = if w.secs > 0.0 {
                    s.ready as f64 / w.secs
                } else {
                    0.0
                };
                report.phase(
                    "setup",
                    &w,
                    json!({
                        "ready": s.ready, "complete": ok, "dropped": dropped,
                        "attempts": s.attempts - before.attempts,
                        "concurrency": a.concurrency, "setup_per_s": round3(per_s),
                    }),
                    &format!(
                        "{} of {} clients set up ({per_s:.0}/s), {dropped} dropped, concurrency {}",
                        s.ready, a.clients, a.concurrency
                    ),
                );
                all_ok &= ok;
                if ok && a.phases.len() > 1 {
                    all_ok &= engine.settle(Duration::from_secs(30));
                }
            }
            Phase::Idle => {
                let w = engine.idle(a.idle);
                let hb = engine.ctx.stats.heartbeats - before.heartbeats;
                report.phase(
                    "idle",
                    &w,
                    json!({ "heartbeats": hb }),
                    &format!("{hb} heartbeats, interval {} ms", a.heartbeat_ms),
                );
            }
            Phase::Echo => {
                let (w, replies) = engine.closed_loop(a.echo, a.echo_depth);
                let cpu = w.server.1.cpu_ms.saturating_sub(w.server.0.cpu_ms);
                let per_s = replies as f64 / w.secs.max(1e-9);
                let per_k = if replies > 0 {
                    cpu as f64 / (replies as f64 / 1000.0)
                } else {
                    0.0
                };
                report.phase(
                    "echo",
                    &w,
                    json!({
                        "replies": replies, "replies_per_s": round3(per_s),
                        "server_cpu_ms_per_1000": round3(per_k), "depth": a.echo_depth,
                    }),
                    &format!("{per_s:.0} replies/s, server {per_k:.3} ms CPU per 1000"),
                );
            }
            Phase::Latency => {
                let w = engine.fixed_rate(a.rate, a.latency);
                let h = &engine.ctx.hist;
                let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                let sent = engine.ctx.stats.latency_sent - before.latency_sent;
                let lag = engine.send_lag_max.as_secs_f64() * 1000.0;
                report.phase(
                    "latency",
                    &w,
                    json!({
                        "rate": a.rate, "sent": sent, "replies": h.len(),
                        "achieved_rate": round3(sent as f64 / w.secs.max(1e-9)),
                        "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99),
                        "p999_ms": ms(0.999), "max_ms": h.max() as f64 / 1000.0,
                        "send_lag_max_ms": round3(lag),
                    }),
                    &format!(
                        "{} req/s: p50 {:.3} p99 {:.3} p999 {:.3} max {:.3} ms",
                        a.rate,
                        ms(0.5),
                        ms(0.99),
                        ms(0.999),
                        h.max() as f64 / 1000.0
                    ),
                );
            }
            Phase::Storm => {
                for k in 0..a.storms {
                    let b = engine.ctx.stats.vote_infos;
                    let split = engine.storm(true, a.storm_timeout);
                    let heal = engine.storm(false, a.storm_timeout);
                    let (w1, w2) = (split.window, heal.window);
                    let w = Window {
                        secs: w1.secs + w2.secs,
                        server: (w1.server.0, w2.server.1),
                        me: (w1.me.0, w2.me.1),
                    };
                    let ms = |d: Duration| round3(d.as_secs_f64() * 1000.0);
                    let opt = |d: Option<Duration>| d.map(ms);
                    let clusters = a.clients / 2;
                    report.phase(
                        "storm",
                        &w,
                        json!({
                            "storm": k + 1, "clusters": clusters,
                            "split_last_ms": opt(split.last),
                            "split_median_ms": ms(split.median),
                            "split_send_ms": ms(split.sent),
                            "heal_last_ms": opt(heal.last),
                            "heal_median_ms": ms(heal.median),
                            "split_server_cpu_ms":
                                w1.server.1.cpu_ms.saturating_sub(w1.server.0.cpu_ms),
                            "vote_infos": engine.ctx.stats.vote_infos - b,
                        }),
                        &format!(
                            "{clusters} clusters: split last vote {} ms (median {}, lists written in {} ms), heal last {} ms",
                            opt(split.last).map_or("-".into(), |x| x.to_string()),
                            ms(split.median),
                            ms(split.sent),
                            opt(heal.last).map_or("-".into(), |x| x.to_string()),
                        ),
                    );
                    if split.last.is_none() || heal.last.is_none() {
                        break;
                    }
                }
            }
            Phase::Rounds => {
                let (w, ok) = engine.rounds(a.rounds, Duration::from_secs(600));
                report.phase(
                    "rounds",
                    &w,
                    json!({ "rounds": a.rounds, "complete": ok }),
                    &format!("{} echo round trips per client", a.rounds),
                );
            }
        }
        if let Some(s) = spawned.as_deref_mut()
            && !s.alive()
        {
            engine.ctx.errors.protocol += 1;
            engine.ctx.errors.note("the server process exited".into());
        }
        if engine.ctx.errors.protocol > 0 {
            break;
        }
    }
    let errors = &engine.ctx.errors;
    if errors.protocol > 0 || errors.drops > 0 {
        eprintln!(
            "{} protocol error(s), {} dropped connection(s); first ones:",
            errors.protocol, errors.drops
        );
        for e in &errors.first {
            eprintln!("  {e}");
        }
    }
    all_ok && !engine.failed()
}
