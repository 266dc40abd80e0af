//! The command line of every program through the real binary: one help
//! (`qnetd -h` lists the subcommands), `--help`/`--version` everywhere, the
//! same exit codes and `PROGRAM: ` prefix, the tool's connection error, and
//! a listener failure that logs only what happened.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use crate::support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_qnetd");
const SUBCOMMANDS: [&str; 3] = ["certutil", "tool", "healthcheck"];

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

fn from_output(o: &Output) -> Run {
    Run {
        code: o.status.code(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn qnetd_in(dir: Option<&Path>, exe: &Path, args: &[&str]) -> Run {
    let mut c = support::command(exe, None);
    c.args(args).stdin(Stdio::null());
    if let Some(d) = dir {
        c.current_dir(d);
    }
    from_output(&c.output().unwrap())
}

fn qnetd(args: &[&str]) -> Run {
    qnetd_in(None, Path::new(BIN), args)
}

fn version_line() -> String {
    format!(
        "qnetd version '{}' (Corosync Qdevice Network Daemon protocol 3.0.3)",
        env!("CARGO_PKG_VERSION")
    )
}

#[test]
fn the_daemon_help_lists_the_subcommands() {
    let short = qnetd(&["-h"]);
    assert_eq!(short.code, Some(1), "-h exits 1 as the reference");
    assert!(
        short.out.starts_with("usage: qnetd [-46dfhv]"),
        "{}",
        short.out
    );
    for sub in SUBCOMMANDS {
        assert!(
            short.out.contains(&format!("\n  qnetd {sub} ")),
            "{sub}: {}",
            short.out
        );
    }
    let long = qnetd(&["--help"]);
    assert_eq!(long.code, Some(0));
    assert_eq!(long.out, short.out);

    let v = qnetd(&["-v"]);
    assert_eq!(v.code, Some(1), "-v exits 1 as the reference");
    assert!(v.out.starts_with(&version_line()), "{}", v.out);
    assert!(v.out.contains("Supported algorithms: "), "{}", v.out);
    let long = qnetd(&["--version"]);
    assert_eq!((long.code, long.out), (Some(0), v.out));

    let bad = qnetd(&["--bogus"]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.err.starts_with("qnetd: "), "{}", bad.err);
}

#[test]
fn every_subcommand_takes_help_and_version() {
    for sub in SUBCOMMANDS {
        let help = qnetd(&[sub, "--help"]);
        assert_eq!(help.code, Some(0), "{sub} --help: {}", help.err);
        assert!(
            help.out
                .to_lowercase()
                .starts_with(&format!("usage: qnetd {sub} ")),
            "{sub}: {}",
            help.out
        );
        assert!(help.err.is_empty(), "{sub}: {}", help.err);

        let version = qnetd(&[sub, "--version"]);
        assert_eq!(version.code, Some(0), "{sub} --version: {}", version.err);
        assert_eq!(version.out, format!("{}\n", version_line()), "{sub}");

        // -h: the reference program's status (its usage either way).
        let h = qnetd(&[sub, "-h"]);
        let want = if sub == "tool" { 1 } else { 0 };
        assert_eq!(h.code, Some(want), "{sub} -h");
        assert!(
            h.out.to_lowercase().starts_with("usage: "),
            "{sub}: {}",
            h.out
        );

        // A usage error: status 1, one message with the program prefix.
        let bad = qnetd(&[sub, "-Z"]);
        assert_eq!(bad.code, Some(1), "{sub} -Z");
        assert!(
            bad.err.starts_with(&format!("qnetd {sub}: ")),
            "{sub}: {}",
            bad.err
        );
    }
}

#[test]
fn the_reference_tool_name_keeps_the_reference_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("corosync-qnetd-tool");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let run = qnetd_in(None, &link, &["--help"]);
    assert_eq!(run.code, Some(1));
    assert!(run.err.ends_with("invalid option -- '-'\n"), "{}", run.err);
    let missing = dir.path().join("missing.sock");
    let run = qnetd_in(None, &link, &["-s", "-p", missing.to_str().unwrap()]);
    assert_eq!(run.code, Some(3));
    assert_eq!(
        run.err,
        "corosync-qnetd-tool: Can't connect to qnetd socket (is QNetd running?): No such file or directory\n"
    );
}

#[test]
fn the_tool_names_the_socket_it_tried() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let missing = missing.to_str().unwrap();
    let run = qnetd(&["tool", "-s", "-p", missing]);
    assert_eq!(run.code, Some(3));
    let mut lines = run.err.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "qnetd tool: Can't connect to qnetd socket {missing} (is QNetd running?): \
                 No such file or directory"
            )
            .as_str()
        )
    );
    let hint = lines.next().unwrap_or_default();
    assert!(
        hint.starts_with("qnetd tool: ")
            && hint.contains("-p PATH")
            && hint.contains("local_socket_file"),
        "{hint}"
    );
    // The default path is named too.
    let run = qnetd(&["tool", "-s"]);
    if run.code == Some(3) {
        assert!(
            run.err
                .contains("/var/run/corosync-qnetd/corosync-qnetd.sock"),
            "{}",
            run.err
        );
    }
}

#[test]
fn the_tool_reaches_a_server_by_a_relative_socket_path() {
    // As after `make run`: `qnetd tool -s -p target/run/qnetd.sock`.
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("target/run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let daemon = support::Launch::ours(&run_dir, "qnetd")
        .args(&["-s", "off"])
        .start();
    let port = daemon.port;
    let run = qnetd_in(
        Some(dir.path()),
        Path::new(BIN),
        &["tool", "-s", "-p", "target/run/qnetd.sock"],
    );
    drop(daemon);
    assert_eq!(run.code, Some(0), "{}", run.err);
    assert!(
        run.out
            .contains(&format!("QNetd address:\t\t\t127.0.0.1:{port}")),
        "{}",
        run.out
    );
}

#[test]
fn healthcheck_errors_have_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let run = qnetd(&["healthcheck", "-p", missing.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(run.out.is_empty(), "{}", run.out);
    assert!(
        run.err.starts_with("qnetd healthcheck: unhealthy: ") && run.err.contains("missing.sock"),
        "{}",
        run.err
    );
}

#[test]
fn a_port_in_use_is_one_true_error() {
    let dir = tempfile::tempdir().unwrap();
    // Held on loopback; our wildcard listener cannot bind it either.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let settings = format!(
        "lock_file={0}/qnetd.pid,local_socket_file={0}/qnetd.sock",
        dir.path().display()
    );
    let mut child = support::command(BIN, None)
        .args(["-f", "-s", "off", "-p", &port.to_string(), "-S", &settings])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("qnetd did not fail on a port in use");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = from_output(&child.wait_with_output().unwrap());
    drop(held);
    assert_eq!(run.code, Some(1), "{}", run.err);
    let log = format!("{}{}", run.out, run.err);
    assert!(!log.contains("only"), "no fallback was made: {log}");
    assert!(!log.contains("listening on"), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("Can't listen")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(&format!("[::]:{port}")) && errors[0].contains("in use"),
        "{log}"
    );
}
