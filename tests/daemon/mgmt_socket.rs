//! The management socket of our server, on its own (no reference needed):
//! `qnetd tool --json`, shutdown through the socket, cleanup, the lock
//! file, `qnetd healthcheck`.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::server::{
    Kind, OURS, Scratch, Server, free_ports, ipc, run_tool, sample_clients,
};

fn our_tool(args: &[&str], socket: &Path) -> crate::support::server::ToolRun {
    let mut all = vec!["tool"];
    all.extend(args);
    all.extend(["-p", socket.to_str().unwrap()]);
    run_tool(Path::new(OURS), OURS, &all)
}

#[test]
fn json_report_through_the_tool() {
    let dir = Scratch::new("json");
    let port = free_ports(1)[0];
    let server = Server::start(Kind::Ours, &dir, "ours", port, "");
    let nodes = sample_clients(server.port);

    let run = our_tool(&["--json"], &server.socket);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stderr, "");
    let doc: qnetd::mgmt::json::Report = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc.schema_version, 1);
    assert_eq!(doc.server.address, "127.0.0.1");
    assert_eq!(doc.server.port, port);
    assert_eq!(doc.server.connected_clients, 3);
    assert_eq!(doc.server.connected_clusters, 2);
    let names: Vec<&str> = doc.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["testcluster", "other"]);
    let n1 = &doc.clusters[0].nodes[0];
    assert_eq!(n1.address, format!("127.0.0.1:{}", nodes[0].local_port));
    assert_eq!(n1.config_version, Some(5));
    assert_eq!(n1.heartbeat_interval_ms, 8000);

    // The same document as plain JSON values, as a script would read it.
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["server"]["tls"], "unsupported");
    assert_eq!(v["clusters"][0]["kap_tie_breaker"], true);
    assert_eq!(v["clusters"][0]["nodes"][1]["last_vote"], "no_change");
    assert_eq!(v["clusters"][0]["nodes"][1]["last_ack_nack_vote"], "ack");
    assert_eq!(v["clusters"][1]["tie_breaker"]["mode"], "node_id");
    assert_eq!(v["clusters"][1]["tie_breaker"]["node_id"], 3);
    assert_eq!(
        v["clusters"][1]["nodes"][0]["heuristics"]["current"],
        "pass"
    );
    assert_eq!(v["clusters"][1]["nodes"][0]["ring_id"]["seq"], 20);

    // -c filters; -v changes nothing.
    let run = our_tool(&["--json", "-v", "-c", "other"], &server.socket);
    let doc: qnetd::mgmt::json::Report = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc.clusters.len(), 1);
    assert_eq!(doc.clusters[0].name, "other");
    // The raw request.
    let raw = ipc(&server.socket, b"json cluster nosuch\n").unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let body = raw.strip_prefix("OK\n").unwrap();
    let doc: qnetd::mgmt::json::Report = serde_json::from_str(body).unwrap();
    assert!(doc.clusters.is_empty());
    drop(nodes);
}

#[test]
fn shutdown_through_the_socket_stops_the_server_cleanly() {
    let dir = Scratch::new("shutdown");
    let port = free_ports(1)[0];
    let mut server = Server::start(Kind::Ours, &dir, "ours", port, "");
    let mut nodes = sample_clients(server.port);
    let run = our_tool(&["-H"], &server.socket);
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str(), run.code),
        ("", "", Some(0))
    );
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server exits");
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(!server.socket.exists(), "socket file removed");
    assert!(server.lock.exists(), "lock file kept, as the reference");
    for n in &mut nodes {
        assert!(n.closed_by_server(Duration::from_secs(2)));
    }
    // Afterwards the tool cannot connect.
    let run = our_tool(&["-s"], &server.socket);
    assert_eq!(run.code, Some(3));
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("qnetd tool: Can't connect to qnetd socket ")
            && first.ends_with("(is QNetd running?): No such file or directory"),
        "{run:?}"
    );
}

#[test]
fn sigterm_removes_the_socket_and_a_stale_one_is_replaced() {
    let dir = Scratch::new("sigterm");
    let port = free_ports(1)[0];
    // A stale file where the socket goes, in a directory that does not
    // exist yet for the second run.
    let socket = dir.path("run/sub/q.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, b"stale").unwrap();
    let lock = dir.path("q.pid");
    let mut server = Server::spawn(Kind::Ours, &dir, "ours", port, &lock, &socket, "");
    let start = Instant::now();
    while ipc(&socket, b"status\n").is_none_or(|r| !r.starts_with(b"OK\n")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::support::sigterm(&server.child);
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(!socket.exists());

    // The socket's directory is created when missing.
    std::fs::remove_dir_all(dir.path("run")).unwrap();
    let nested = Server::spawn(
        Kind::Ours,
        &dir,
        "nested",
        free_ports(1)[0],
        &dir.path("n.pid"),
        &socket,
        "",
    );
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            nested.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(nested);
}

#[test]
fn a_second_instance_refuses_and_leaves_the_first_alone() {
    let dir = Scratch::new("lock");
    let port = free_ports(1)[0];
    let first = Server::start(Kind::Ours, &dir, "first", port, "");
    let mut second = Server::spawn(
        Kind::Ours,
        &dir,
        "second",
        port,
        &first.lock,
        &first.socket,
        "",
    );
    let status = second.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        second.log_text().contains("Another instance is running"),
        "{}",
        second.log_text()
    );
    let reply = ipc(&first.socket, b"status\n").unwrap();
    assert!(reply.starts_with(b"OK\nQNetd address:"));
    let run = our_tool(&["-s"], &first.socket);
    assert!(run.stdout.contains(&format!("127.0.0.1:{port}\n")));
}

/// The check's own budget is 0.8 s; the rest absorbs process start-up on a
/// loaded machine.
const HEALTHCHECK_LIMIT: Duration = Duration::from_millis(1500);

fn healthcheck(args: &[&str]) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut all = vec!["healthcheck"];
    all.extend(args);
    let run = run_tool(Path::new(OURS), OURS, &all);
    // Healthy on stdout; unhealthy on stderr, with the program prefix.
    (run.code, run.stdout + &run.stderr, start.elapsed())
}

#[test]
fn healthcheck_answers_within_a_second() {
    let dir = Scratch::new("health");
    let port = free_ports(1)[0];
    let mut server = Server::start(Kind::Ours, &dir, "ours", port, "");
    let socket = server.socket.to_str().unwrap().to_string();

    let (code, out, took) = healthcheck(&["-p", &socket]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("healthy: "), "{out}");
    assert_eq!(out.lines().count(), 1);
    assert!(took < HEALTHCHECK_LIMIT, "{took:?}");

    // A wrong TCP port: unhealthy.
    let closed = free_ports(1)[0].to_string();
    let (code, out, _) = healthcheck(&["-p", &socket, "--port", &closed]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("qnetd healthcheck: unhealthy: TCP 127.0.0.1:"),
        "{out}"
    );

    // A socket nobody answers on: unhealthy, still within the budget.
    let hung = dir.path("hung.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let (code, out, took) = healthcheck(&["-p", hung.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(took < HEALTHCHECK_LIMIT, "{took:?}");

    // Stopped: unhealthy.
    let _ = ipc(&server.socket, b"shutdown\n");
    server.wait_exit(Duration::from_secs(5)).expect("exits");
    let (code, out, took) = healthcheck(&["-p", &socket]);
    assert_eq!(code, Some(1), "{out}");
    assert!(took < HEALTHCHECK_LIMIT, "{took:?}");
}

#[test]
fn healthcheck_works_against_the_reference() {
    if crate::support::server::reference().is_none() {
        return;
    }
    let dir = Scratch::new("health-ref");
    let port = free_ports(1)[0];
    let server = Server::start(Kind::Reference, &dir, "ref", port, "");
    let (code, out, _) = healthcheck(&["-p", server.socket.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
}
