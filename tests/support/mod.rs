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
