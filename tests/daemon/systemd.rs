//! The daemon under a service manager, with sockets the test owns:
//! `sd_notify` (`READY=1` once it serves, `STOPPING=1` on SIGTERM, to a
//! path or an abstract `@name` in `$NOTIFY_SOCKET`), and the log
//! destinations of [`qnetd::logging`]: syslog datagrams when stderr is
//! `/dev/null`, `<N>`-prefixed lines when `$JOURNAL_STREAM` names stderr.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support;
use crate::support::server::{Scratch, free_ports};

/// Starts `qnetd -f -s off` on a free loopback port with its lock file and
/// management socket in `dir`, with `env` added and `stderr` as given.
fn spawn(dir: &Scratch, env: &[(&str, &str)], stderr: Stdio) -> Child {
    let port = free_ports(1)[0].to_string();
    let settings = format!(
        "lock_file={},local_socket_file={}",
        dir.path("q.pid").display(),
        dir.path("q.sock").display()
    );
    let mut c = support::command(env!("CARGO_BIN_EXE_qnetd"), None);
    c.args([
        "-f",
        "-s",
        "off",
        "-l",
        "127.0.0.1",
        "-p",
        &port,
        "-S",
        &settings,
    ])
    .env_remove("RUST_LOG")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("JOURNAL_STREAM")
    .env_remove(qnetd::logging::SYSLOG_SOCKET_ENV)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(stderr);
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("spawn qnetd")
}

fn receiver(sock: &UnixDatagram) {
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a datagram within 60 s");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn ready_then_stopping_on_a_path_socket() {
    let dir = Scratch::new("notify");
    let path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    receiver(&sock);
    let child = spawn(
        &dir,
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
        Stdio::null(),
    );
    assert_eq!(recv(&sock), "READY=1");
    // READY=1 comes after the management socket is bound.
    let status = support::server::ipc(&dir.path("q.sock"), b"status\n");
    assert!(status.is_some_and(|r| r.starts_with(b"OK\n")));
    terminate(child);
    assert_eq!(recv(&sock), "STOPPING=1");
}

#[test]
fn ready_on_an_abstract_socket() {
    let dir = Scratch::new("notify-abs");
    let name = format!("qnetd-test-notify-{}", std::process::id());
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    receiver(&sock);
    let child = spawn(
        &dir,
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
        Stdio::null(),
    );
    assert_eq!(recv(&sock), "READY=1");
    terminate(child);
    assert_eq!(recv(&sock), "STOPPING=1");
}

#[test]
fn syslog_when_stderr_is_dev_null() {
    let dir = Scratch::new("syslog");
    let path = dir.path("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    receiver(&sock);
    let child = spawn(
        &dir,
        &[(qnetd::logging::SYSLOG_SOCKET_ENV, path.to_str().unwrap())],
        Stdio::null(),
    );
    let tag = format!("qnetd[{}]: ", child.id());
    let first = recv(&sock);
    // <30> = facility daemon (3) * 8 + info (6); then "Mmm dd hh:mm:ss ".
    assert!(first.starts_with("<30>"), "{first}");
    let (stamp, rest) = first[4..].split_at(16);
    assert!(
        stamp.as_bytes()[3] == b' ' && stamp.as_bytes()[9] == b':',
        "{first}"
    );
    assert_eq!(
        rest,
        format!(
            "{tag}qnetd {} starting (protocol of corosync-qnetd {})",
            env!("CARGO_PKG_VERSION"),
            qnetd::REFERENCE_VERSION
        )
    );
    // `-s off`: the one start-up warning, at priority warning (<28>).
    let warning = recv(&sock);
    assert!(
        warning.starts_with("<28>") && warning.contains("clients are not authenticated"),
        "{warning}"
    );
    let ready = recv(&sock);
    assert!(
        ready.contains(&format!("{tag}QNetd ready to provide service")),
        "{ready}"
    );
    terminate(child);
    assert!(recv(&sock).ends_with("Signal received - shutting down"));
}

#[test]
fn journal_prefixes_when_journal_stream_is_stderr() {
    let dir = Scratch::new("journal");
    let log = dir.path("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let notify = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    receiver(&sock);
    let child = spawn(
        &dir,
        &[
            ("JOURNAL_STREAM", &stream),
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
        ],
        Stdio::from(file),
    );
    assert_eq!(recv(&sock), "READY=1");
    terminate(child);
    assert_eq!(recv(&sock), "STOPPING=1");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("<6>qnetd ")
            && lines[1].starts_with("<4>clients are not authenticated")
            && lines[2].starts_with("<6>QNetd ready"),
        "{text}"
    );
    assert!(lines.iter().all(|l| l.starts_with('<')), "{text}");

    // The same file without JOURNAL_STREAM: plain lines with a timestamp.
    let log = dir.path("plain.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = spawn(
        &dir,
        &[("NOTIFY_SOCKET", notify.to_str().unwrap())],
        Stdio::from(file),
    );
    assert_eq!(recv(&sock), "READY=1");
    terminate(child);
    assert_eq!(recv(&sock), "STOPPING=1");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.starts_with('<') && text.contains(" info    qnetd "),
        "{text}"
    );
}
