//! Code shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "test support code, shared by several test binaries that each use a part"
)]

pub mod golden;
pub mod harness;
pub(crate) mod qclient;
pub(crate) mod runner;
pub(crate) mod scenario;
pub mod server;
pub mod skip;
pub mod wire;

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The emulator that runs our foreign-arch binary when the suite runs
/// under qemu-user: `make test-aarch64` / `make test-armv7` set
/// `QNETD_TEST_RUNNER` (there is no binfmt_misc to exec it directly).
/// Whether `p` is our own binary (or a link to it).
pub fn is_ours(p: &OsStr) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    canon(Path::new(p)).is_some_and(|c| Some(c) == canon(Path::new(env!("CARGO_BIN_EXE_qnetd"))))
}

/// The program line that runs `exe` behind a wrapper (`setpriv ...`,
/// `sh -c ...`): `[runner, exe]` for our binary under emulation, else `[exe]`.
pub fn wrapped(exe: impl AsRef<OsStr>) -> Vec<OsString> {
    let exe = exe.as_ref();
    match runner() {
        Some(r) if is_ours(exe) => vec![r, exe.to_os_string()],
        _ => vec![exe.to_os_string()],
    }
}

pub fn runner() -> Option<OsString> {
    std::env::var_os("QNETD_TEST_RUNNER").filter(|r| !r.is_empty())
}

/// A [`Command`] for `exe`, with `argv[0]` = `arg0` if given. Our own
/// binary (or a link to it) goes through [`runner`] when there is one;
/// host programs such as the reference server run directly.
pub fn command(exe: impl AsRef<OsStr>, arg0: Option<&str>) -> Command {
    let exe = exe.as_ref();
    match runner() {
        Some(r) if is_ours(exe) => {
            let mut c = Command::new(r);
            if let Some(a) = arg0 {
                c.args(["-0", a]);
            }
            c.arg(exe);
            c
        }
        _ => {
            let mut c = Command::new(exe);
            if let Some(a) = arg0 {
                c.arg0(a);
            }
            c
        }
    }
}

/// The one way the tests start a daemon (ours or the reference): `-f -l
/// 127.0.0.1 -p PORT ARGS -S lock_file=DIR/NAME.pid,
/// local_socket_file=DIR/NAME.sock[,SETTINGS]`, with a private lock file
/// and management socket so that tests run in parallel.
pub struct Launch {
    program: PathBuf,
    lock: PathBuf,
    socket: PathBuf,
    args: Vec<String>,
    settings: String,
    /// A program (with its arguments) that runs the daemon, e.g. `prlimit`.
    via: Vec<String>,
}

impl Launch {
    /// Our `qnetd`, with its files named `NAME.pid` and `NAME.sock` in `dir`.
    pub fn ours(dir: &Path, name: &str) -> Self {
        Self::program(Path::new(env!("CARGO_BIN_EXE_qnetd")), dir, name)
    }

    /// `program` (e.g. the reference `corosync-qnetd`).
    pub fn program(program: &Path, dir: &Path, name: &str) -> Self {
        Self {
            program: program.to_path_buf(),
            lock: dir.join(format!("{name}.pid")),
            socket: dir.join(format!("{name}.sock")),
            args: Vec::new(),
            settings: String::new(),
            via: Vec::new(),
        }
    }

    /// Options before `-S`.
    #[must_use]
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(ToString::to_string));
        self
    }

    /// Advanced settings appended to `-S lock_file=..,local_socket_file=..`.
    #[must_use]
    pub fn settings(mut self, settings: &str) -> Self {
        self.settings = settings.to_string();
        self
    }

    /// Runs the daemon through `wrapper` (e.g. `["prlimit", "--nofile=24"]`).
    #[must_use]
    pub fn via(mut self, wrapper: &[&str]) -> Self {
        self.via = wrapper.iter().map(ToString::to_string).collect();
        self
    }

    /// Other lock file and management socket paths.
    #[must_use]
    pub fn files(mut self, lock: &Path, socket: &Path) -> Self {
        self.lock = lock.to_path_buf();
        self.socket = socket.to_path_buf();
        self
    }

    pub fn lock(&self) -> &Path {
        &self.lock
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The command line on `port`, stdin closed, output not redirected.
    pub fn command(&self, port: u16) -> Command {
        let mut s = format!(
            "lock_file={},local_socket_file={}",
            self.lock.display(),
            self.socket.display()
        );
        if !self.settings.is_empty() {
            s.push(',');
            s.push_str(&self.settings);
        }
        let mut c = match self.via.split_first() {
            Some((wrapper, wrapper_args)) => {
                let mut c = Command::new(wrapper);
                c.args(wrapper_args).args(wrapped(&self.program));
                c
            }
            None => command(&self.program, None),
        };
        c.args(["-f", "-l", "127.0.0.1", "-p", &port.to_string()])
            .args(&self.args)
            .arg("-S")
            .arg(s)
            .stdin(std::process::Stdio::null());
        c
    }

    /// Starts on a free port (output discarded) and waits until ready. If
    /// the port was taken in the meantime (the server exits), it retries on
    /// another one.
    pub fn start(&self) -> Daemon {
        for _ in 0..5 {
            let port = server::free_ports(1)[0];
            let mut child = self
                .command(port)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn the server");
            match wait_ready(&mut child, &self.socket, std::time::Duration::from_secs(60)) {
                Ok(()) => return Daemon { child, port },
                Err(Some(_exited)) => {} // e.g. the port was taken meanwhile
                Err(None) => panic!("{} did not start within 60 s", self.program.display()),
            }
        }
        panic!("{} exited at start-up five times", self.program.display());
    }
}

/// A started daemon, killed on drop (panics included).
pub struct Daemon {
    pub child: std::process::Child,
    pub port: u16,
}

impl Daemon {
    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        sigterm(&self.child);
        self.child.wait().expect("wait")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to `child` (with `kill`: the tests use no libc).
pub fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {}", child.id());
}

/// Waits until `child`'s management socket answers `status` (a test
/// running in parallel cannot make us talk to its server). `Err(Some)`:
/// the child exited first; `Err(None)`: not ready within `limit`.
#[allow(clippy::disallowed_methods, reason = "test deadline")]
pub fn wait_ready(
    child: &mut std::process::Child,
    socket: &Path,
    limit: std::time::Duration,
) -> Result<(), Option<std::process::ExitStatus>> {
    let start = std::time::Instant::now();
    loop {
        if server::ipc(socket, b"status\n").is_some_and(|r| r.starts_with(b"OK\n")) {
            return Ok(());
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Err(Some(status));
        }
        if start.elapsed() >= limit {
            return Err(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
