//! Honest skips. A test that cannot run because something is missing on
//! this machine (the reference server, a tool, root) never passes in
//! silence: [`skip`] prints `SKIPPED <test>: <reason>` straight to stderr
//! (past the test harness's capture) and appends `test<TAB>reason<TAB>
//! install command` to the file named by `QNETD_SKIP_LOG`, which
//! `scripts/test-skips.sh` summarises at the end of `make test`.
//!
//! With `QNETD_REQUIRE_ALL=1` (`make test REQUIRE_ALL=1`, as `.ci/run` does)
//! a skip is a failure: [`skip`] panics, so the test fails by name.
//!
//! The reference server is found by [`reference_server`]; setting
//! `QNETD_REFERENCE=/nonexistent` simulates a machine without it.

use std::io::Write as _;
use std::path::PathBuf;

/// The Debian command that installs the reference server and its tool.
pub const INSTALL_REFERENCE: &str = "apt-get install -y corosync-qnetd";

/// Records that the current test is skipped because of `reason`;
/// `install` is the one-line command that removes the reason ("" if none
/// does). Panics in `QNETD_REQUIRE_ALL=1` mode.
pub fn skip(reason: &str, install: &str) {
    let test = current_test();
    let hint = if install.is_empty() {
        String::new()
    } else {
        format!(" (install: {install})")
    };
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}{hint}");
    if let Some(log) = std::env::var_os("QNETD_SKIP_LOG").filter(|p| !p.is_empty()) {
        // One short write per line with O_APPEND: lines of tests running in
        // parallel (threads or test binaries) do not interleave.
        let line = format!("{test}\t{reason}\t{install}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("cannot append to QNETD_SKIP_LOG {}: {e}", log.display());
        }
    }
    if std::env::var_os("QNETD_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("SKIPPED {test}: {reason}{hint}, and QNETD_REQUIRE_ALL is set");
    }
}

/// The running test's name: the harness names each test's thread after it.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "(unnamed test)".to_string(),
    }
}

/// `name` found in `PATH`, `/usr/sbin` or `/usr/bin`.
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The reference `corosync-qnetd`: `QNETD_REFERENCE` if set (it must
/// exist), else the first in [`program`]'s search path.
pub fn reference_server() -> Option<PathBuf> {
    match std::env::var_os("QNETD_REFERENCE") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => program("corosync-qnetd"),
    }
}

/// The reference `corosync-qnetd-tool`, next to [`reference_server`].
pub fn reference_tool() -> Option<PathBuf> {
    let dir = reference_server()?.parent()?.to_path_buf();
    [dir, PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")]
        .into_iter()
        .map(|d| d.join("corosync-qnetd-tool"))
        .find(|p| p.is_file())
}

/// Whether every `(program, apt package)` is installed; if not, records
/// the skip naming the missing programs and the command installing them.
pub fn require_programs(needs: &[(&str, &str)]) -> bool {
    let missing: Vec<_> = needs.iter().filter(|(p, _)| program(p).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, k)| *k).collect();
    packages.dedup();
    skip(
        &format!("{} not installed", names.join(", ")),
        &format!("apt-get install -y {}", packages.join(" ")),
    );
    false
}

/// Whether the test runs as root; if not, records the skip.
pub fn require_root() -> bool {
    // The effective uid: the second field of `Uid:`.
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    });
    if !root {
        skip("needs root", "");
    }
    root
}
