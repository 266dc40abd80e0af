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
use std::path::Path;
use std::process::Command;

/// The emulator that runs our foreign-arch binary when the suite runs
/// under qemu-user: `make test-aarch64` / `make test-armv7` set
/// `QNETD_TEST_RUNNER` (there is no binfmt_misc to exec it directly).
pub fn runner() -> Option<OsString> {
    std::env::var_os("QNETD_TEST_RUNNER").filter(|r| !r.is_empty())
}

/// A [`Command`] for `exe`, with `argv[0]` = `arg0` if given. Our own
/// binary (or a link to it) goes through [`runner`] when there is one;
/// host programs such as the reference server run directly.
pub fn command(exe: impl AsRef<OsStr>, arg0: Option<&str>) -> Command {
    let exe = exe.as_ref();
    let ours = |p: &OsStr| {
        let canon = |p: &Path| std::fs::canonicalize(p).ok();
        canon(Path::new(p))
            .is_some_and(|c| Some(c) == canon(Path::new(env!("CARGO_BIN_EXE_qnetd"))))
    };
    match runner() {
        Some(r) if ours(exe) => {
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

/// Starts our daemon with `-f -l 127.0.0.1 -p PORT ARGS -S
/// lock_file=DIR/qnetd.pid,local_socket_file=DIR/qnetd.sock[,SETTINGS]` on a
/// free port, and waits until its own management socket answers: a test
/// running in parallel cannot make us talk to its server. If the port was
/// taken in the meantime (the server exits), it retries on another one.
/// Returns the child and the port.
pub fn start_qnetd(dir: &Path, args: &[&str], settings: &str) -> (std::process::Child, u16) {
    use std::time::{Duration, Instant};
    let socket = dir.join("qnetd.sock");
    for _ in 0..5 {
        let port = server::free_ports(1)[0];
        let mut s = format!(
            "lock_file={},local_socket_file={}",
            dir.join("qnetd.pid").display(),
            socket.display()
        );
        if !settings.is_empty() {
            s.push(',');
            s.push_str(settings);
        }
        let mut child = command(env!("CARGO_BIN_EXE_qnetd"), None)
            .args(["-f", "-l", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .arg("-S")
            .arg(s)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn qnetd");
        #[allow(clippy::disallowed_methods, reason = "test deadline")]
        let start = Instant::now();
        loop {
            if server::ipc(&socket, b"status\n").is_some_and(|r| r.starts_with(b"OK\n")) {
                return (child, port);
            }
            if child.try_wait().expect("try_wait").is_some() {
                break; // e.g. the port was taken meanwhile: try another
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "qnetd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("qnetd exited at start-up five times");
}
