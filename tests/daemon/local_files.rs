//! Issue 11, finding 5: the daemon's local files resist other local users.
//! The management socket is 0660 or tighter whatever the umask, only root
//! or the daemon's uid may shut it down, idle management connections
//! neither lock out the tool and the health check nor stay open, and the
//! lock file is never a symlink.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::server::{Kind, OURS, Scratch, Server, free_ports, ipc, run_tool};
use crate::support::{Launch, skip};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn socket_mode_ignores_a_umask_of_000() {
    let dir = Scratch::new("umask");
    let launch = Launch::ours(&dir.0, "q").args(&["-s", "off"]).via(&[
        "sh",
        "-c",
        "umask 000; exec \"$@\"",
        "sh",
    ]);
    let mut daemon = launch.start();
    let m = mode(launch.socket());
    assert_eq!(m & !0o660, 0, "socket mode {m:o} is at most 0660");
    assert_eq!(m, 0o660, "owner and group keep read/write");
    // The wrapper really ran with umask 000: the lock file it created has
    // its full 0640.
    assert_eq!(mode(launch.lock()), 0o640);
    assert!(daemon.terminate().success());
}

#[test]
fn idle_management_connections_lock_out_neither_tool_nor_health_check() {
    let dir = Scratch::new("idle-ipc");
    let server = Server::start(Kind::Ours, &dir, "ours", free_ports(1)[0], "");
    let socket = server.socket.to_str().unwrap().to_string();
    // More idle connections than `ipc_max_clients` (10).
    let idle: Vec<UnixStream> = (0..12)
        .map(|_| UnixStream::connect(&server.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let run = run_tool(Path::new(OURS), OURS, &["tool", "-s", "-p", &socket]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("QNetd address:"), "{run:?}");
    let run = run_tool(Path::new(OURS), OURS, &["healthcheck", "-p", &socket]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("healthy: "), "{run:?}");
    assert!(
        server
            .log_text()
            .contains("Closing the oldest idle IPC connection"),
        "{}",
        server.log_text()
    );
    // Every idle connection is closed: the oldest to make room, the rest
    // at their deadline. EOF, not a read timeout.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }
    assert!(
        server
            .log_text()
            .contains("IPC client did not finish within"),
        "{}",
        server.log_text()
    );
}

#[test]
fn tool_reports_a_connection_closed_without_a_reply() {
    let dir = Scratch::new("tool-closed");
    // A server that accepts and closes at once, as a full reference does.
    let path = dir.path("closing.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let closer = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        drop(s);
    });
    let run = run_tool(
        Path::new(OURS),
        OURS,
        &["tool", "-s", "-p", path.to_str().unwrap()],
    );
    closer.join().unwrap();
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.code.is_some(), "an exit code, not a signal: {run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("closed the connection") || run.stderr.contains("Can't send command"),
        "{run:?}"
    );
}

/// Runs our tool as uid/gid 65534 with no groups (`setpriv`, util-linux).
fn tool_as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(crate::support::wrapped(OURS))
        .arg("tool")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn only_root_or_the_daemon_user_may_shut_down() {
    if !skip::require_root() || !skip::require_programs(&[("setpriv", "util-linux")]) {
        return;
    }
    let dir = Scratch::new("peercred");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = Server::start(Kind::Ours, &dir, "ours", free_ports(1)[0], "");
    let socket = server.socket.to_str().unwrap().to_string();
    // 0660 root:root: another user cannot even connect.
    let out = tool_as_nobody(&["-H", "-p", &socket]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    // An admin who opens the socket to everyone (as with the reference's
    // umask-dependent mode) still keeps shutdown to root: SO_PEERCRED.
    std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = tool_as_nobody(&["-s", "-p", &socket]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status is for everyone: {out:?}"
    );
    let out = tool_as_nobody(&["-H", "-p", &socket]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: Shutdown is allowed only for root and the server's user\n"
    );
    assert!(
        server.wait_exit(Duration::from_millis(300)).is_none(),
        "still running"
    );
    assert!(
        server
            .log_text()
            .contains("IPC client with uid 65534 may not shut the server down"),
        "{}",
        server.log_text()
    );
    // Root may.
    assert_eq!(ipc(&server.socket, b"shutdown\n").unwrap(), b"OK\n");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_kept() {
    let dir = Scratch::new("lock-link");
    let victim = dir.path("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    let lock = dir.path("q.pid");
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let socket = dir.path("q.sock");
    let mut server = Server::spawn(
        Kind::Ours,
        &dir,
        "ours",
        free_ports(1)[0],
        &lock,
        &socket,
        "",
    );
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1), "{}", server.log_text());
    let log = server.log_text();
    let line = format!(
        "Can't open lock file {}: it is a symbolic link, which is never followed",
        lock.display()
    );
    assert!(log.contains(&line), "{log}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert!(!socket.exists(), "refused before binding the socket");
}
