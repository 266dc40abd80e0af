//! What the load generator reads about processes: memory and CPU time of the
//! server from `/proc`, and starting / stopping a server it was asked to run.

use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One sample of a process: resident memory, its high-water mark and CPU time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// `VmRSS` in KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM` (peak RSS) in KiB.
    pub(crate) hwm_kib: u64,
    /// utime + stime in milliseconds (from clock ticks).
    pub(crate) cpu_ms: u64,
    /// Busy CPU time of the whole machine (all cores), in milliseconds;
    /// filled only in the load generator's own samples.
    pub(crate) sys_busy_ms: u64,
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 on every Linux we know.
pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// Samples `/proc/<pid>` (or `/proc/self` for `None`).
pub(crate) fn sample(pid: Option<u32>, ticks: u64) -> Result<Sample, String> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let status = fs::read_to_string(format!("{dir}/status"))
        .map_err(|e| format!("cannot read {dir}/status: {e}"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = fs::read_to_string(format!("{dir}/stat"))
        .map_err(|e| format!("cannot read {dir}/stat: {e}"))?;
    // The command name may contain spaces and parentheses: fields are
    // counted from the last ')'. utime and stime are fields 14 and 15.
    let after = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .ok_or_else(|| format!("malformed {dir}/stat"))?;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Sample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_ms: (utime + stime) * 1000 / ticks,
        sys_busy_ms: 0,
    })
}

/// Busy time of all CPUs since boot in ms (`/proc/stat`: everything but
/// idle and iowait), to tell whether other processes shared the machine.
pub(crate) fn system_busy_ms(ticks: u64) -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy * 1000 / ticks
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Whether some socket listens on `addr` (TCP, from `/proc/net/tcp{,6}`).
/// Checking the kernel's table instead of connecting keeps the server
/// untouched before the first sample.
pub(crate) fn is_listening(addr: SocketAddr) -> bool {
    let port = format!(":{:04X}", addr.port());
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let mut cols = l.split_whitespace();
                let local = cols.nth(1).unwrap_or("");
                let state = cols.nth(1).unwrap_or("");
                state == "0A" && local.ends_with(&port)
            })
        })
    })
}

/// A server process this program started.
pub(crate) struct Spawned {
    child: Child,
}

impl Spawned {
    /// Starts `cmd` with its output going to `log` (or nowhere).
    pub(crate) fn start(cmd: &[OsString], log: Option<&Path>) -> Result<Self, String> {
        let (prog, args) = cmd.split_first().ok_or("empty server command")?;
        let (out, err) = match log {
            Some(p) => {
                let f = fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let g = f.try_clone().map_err(|e| e.to_string())?;
                (Stdio::from(f), Stdio::from(g))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", prog.to_string_lossy()))?;
        Ok(Self { child })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server listens on `addr`; fails if it exits first.
    pub(crate) fn wait_listening(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), String> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("server exited during start-up ({st})"));
            }
            if is_listening(addr) {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "server does not listen on {addr} after {timeout:?}"
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server with SIGTERM (so that valgrind writes its output),
    /// then SIGKILL if it is still there after `grace`.
    pub(crate) fn stop(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + grace;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                return self.child.wait().ok();
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Finds the pid of a process whose command line starts with `prefix`
/// (for `--pid` given as a command name instead of a number).
pub(crate) fn find_pid(name: &str) -> Option<u32> {
    let mut found = None;
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let base = argv0.rsplit(|&b| b == b'/').next().unwrap_or_default();
        if base == name.as_bytes() && pid != std::process::id() {
            if found.is_some() {
                return None; // ambiguous
            }
            found = Some(pid);
        }
    }
    found
}
