//! The daemon in Home Assistant add-on mode, end to end: the healthcheck,
//! a bad options file, logging to stdout and SIGTERM, and the pairing window
//! it opens while nothing is paired.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use qnetd::config::addon;

use crate::support::server::{Scratch, free_ports};

fn temp_dir(name: &str) -> Scratch {
    Scratch::new(&format!("addon-{name}"))
}

/// Polls `f` for up to 5 s.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn healthcheck_answers_against_a_server_with_addon_settings() {
    let dir = temp_dir("hc");
    let port = free_ports(1)[0];
    let (mut config, _) = addon::config_from_json_str(r#"{"tls":"off"}"#).unwrap();
    config.listen_addr = Some("127.0.0.1".into());
    config.port = port;
    let sock = dir.join("qnetd.sock");
    config.advanced.lock_file = dir.join("qnetd.pid");
    config.advanced.local_socket_file.clone_from(&sock);
    // The panel's Ingress port, on loopback and a free port here.
    config.http = Some((std::net::Ipv4Addr::LOCALHOST, 0).into());
    // The server thread runs until the test binary exits.
    std::thread::spawn(move || qnetd::net::run(&config));
    let args = ["-p", sock.to_str().unwrap()].map(OsString::from);
    assert!(eventually(|| {
        qnetd::cmd::healthcheck::run("qnetd healthcheck", args.to_vec()) == ExitCode::SUCCESS
    }));
}

/// Our binary (through the emulator under qemu-user), without `RUST_LOG`.
fn qnetd(args: &[&str]) -> std::process::Command {
    let mut c = crate::support::command(env!("CARGO_BIN_EXE_qnetd"), None);
    c.args(args).env_remove("RUST_LOG");
    c
}

#[test]
fn bad_options_file_exits_non_zero_with_one_line() {
    let dir = temp_dir("bad");
    let file = dir.join("options.json");
    std::fs::write(&file, r#"{"tls":"maybe"}"#).unwrap();
    let out = qnetd(&["--options", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "qnetd: options.json: tls: expected one of off, on, required, got \"maybe\"\n"
    );
}

/// Our binary in add-on mode on 127.0.0.1:`port` with `-S settings`,
/// stdout piped (the log).
fn addon_daemon(options: &Path, port: &str, settings: &str) -> std::process::Command {
    let mut c = qnetd(&[
        "--options",
        options.to_str().unwrap(),
        "-l",
        "127.0.0.1",
        "-p",
        port,
        "-S",
        settings,
        // The panel on an ephemeral loopback port, not the add-on's 8099,
        // so add-on tests run side by side.
        "--http",
        "0",
    ]);
    c.stdout(std::process::Stdio::piped());
    c
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "the test measures wall-clock stop time"
)]
fn addon_mode_logs_to_stdout_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let dir = temp_dir("run");
    let file = dir.join("options.json");
    std::fs::write(&file, r#"{"tls":"off","log_level":"info"}"#).unwrap();
    let port = free_ports(1)[0].to_string();
    let lock = format!(
        "lock_file={},local_socket_file={}",
        dir.join("q.pid").display(),
        dir.join("q.sock").display()
    );
    let mut child = addon_daemon(&file, &port, &lock)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the ready line: it is logged once the signal handlers are
    // installed (a SIGTERM before that would take the default action).
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a first log line on stdout");
    assert!(
        first.contains(&format!(
            "qnetd {} starting (protocol of corosync-qnetd {})",
            env!("CARGO_PKG_VERSION"),
            qnetd::REFERENCE_VERSION
        )),
        "the first line names both versions: {first}"
    );
    let warning = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a first log line on stdout");
    assert!(
        warning.contains("warning clients are not authenticated: TLS is off (-s off)"),
        "tls: off warns once at start: {warning}"
    );
    let ready = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the ready line on stdout");
    assert!(
        ready.contains(&format!(
            "QNetd ready to provide service: listening on 127.0.0.1:{port} (tls=off"
        )),
        "flags after --options (-l, -p) are applied: {ready}"
    );
    crate::support::sigterm(&child);
    let start = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(1), "stops within 1 s");
    assert_eq!(status.code(), Some(0));
    let lines = reader.join().unwrap();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("not authenticated"))
            .count(),
        1,
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Signal received - shutting down")),
        "{lines:?}"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr, "", "add-on mode logs to stdout only");
    assert!(Path::new(&dir.join("q.pid")).exists());
}

/// Add-on mode with TLS and nothing paired yet: the log shows the node
/// command (with the `pairing_address` option), and the command's window
/// answers; once a certificate exists, a restart opens no window.
#[test]
fn addon_mode_opens_a_pairing_window_and_logs_the_node_command() {
    use std::io::BufRead as _;
    let dir = temp_dir("autopair");
    let file = dir.join("options.json");
    std::fs::write(&file, r#"{"tls":"on","pairing_address":"127.0.0.1"}"#).unwrap();
    let settings = format!(
        "lock_file={},local_socket_file={},nss_db_dir={}",
        dir.join("q.pid").display(),
        dir.join("q.sock").display(),
        dir.join("tls").display()
    );
    let run = |expect_window: bool| {
        let port = free_ports(1)[0].to_string();
        let mut child = addon_daemon(&file, &port, &settings)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut found = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("No cluster is paired yet") {
                found = Some(line);
                break;
            }
            if line.contains("QNetd ready to provide service") && !expect_window {
                break;
            }
        }
        if expect_window {
            let line = found.expect("the pairing line in the log");
            let command = line.split(": ").last().unwrap();
            assert!(
                command.starts_with("curl -sSk --pinnedpubkey sha256//")
                    && command.contains(&format!("https://127.0.0.1:{port}/pair/"))
                    && command.ends_with("| bash"),
                "{line}"
            );
        } else {
            // The ready line comes after the window would have been logged.
            let _ = child.kill();
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            assert!(
                found.is_none() && !rest.iter().any(|l| l.contains("No cluster is paired yet")),
                "{rest:?}"
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    run(true);
    // Sign one certificate: the store now has a paired cluster.
    let store = qnetd::cert::store::CertStore::open(dir.join("tls"));
    let csr = include_bytes!("../../src/testdata/reference/qdevice-net-node.crq");
    store.sign_request(csr, "testcluster").unwrap();
    run(false);
}
