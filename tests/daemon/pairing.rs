//! The pairing endpoint through the real binary with the real `curl`:
//! `qnetd pair` prints the node command; its pin and token work, a wrong
//! pin, a wrong token, an expired window, a replay after N certificates, a
//! request for another cluster, oversized and slow requests are refused;
//! the qdevice protocol on the same port is unaffected.

#![allow(
    clippy::disallowed_methods,
    reason = "tests of the real binary use the wall clock"
)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use qnetd::cert::index::CertState;
use qnetd::cert::store::CertStore;
use qnetd::proto::build;
use qnetd::proto::{Msg, MsgType};

use crate::support::server::Scratch;
use crate::support::skip::require_programs;
use crate::support::{Daemon, Launch};
use crate::testkit;
use qnetd::proto::build::Init;

const BIN: &str = env!("CARGO_BIN_EXE_qnetd");

struct Paired {
    _daemon: Daemon,
    port: u16,
    dir: Scratch,
    socket: PathBuf,
}

impl Paired {
    fn start(name: &str) -> Self {
        let dir = Scratch::new(name);
        let store = format!("nss_db_dir={}/store", dir.display());
        let launch = Launch::ours(&dir, "qnetd")
            .args(&["-s", "on"])
            .settings(&store);
        let socket = launch.socket().to_path_buf();
        let daemon = launch.start();
        Self {
            port: daemon.port,
            _daemon: daemon,
            dir,
            socket,
        }
    }

    fn store(&self) -> CertStore {
        CertStore::open(self.dir.join("store"))
    }

    /// `qnetd pair ARGS`.
    fn pair(&self, args: &[&str]) -> Output {
        crate::support::command(BIN, None)
            .arg("pair")
            .args(args)
            .arg("-p")
            .arg(&self.socket)
            .output()
            .unwrap()
    }

    /// Opens a window; returns (pin, base URL `https://…/pair/ID.SECRET`).
    fn open(&self, args: &[&str]) -> (String, String) {
        let out = self.pair(args);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let last = stdout.lines().last().unwrap().to_string();
        let words: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(words[..3], ["curl", "-sSk", "--pinnedpubkey"], "{last}");
        assert_eq!(words[5..], ["|", "bash"], "{last}");
        let port = format!(":{}/pair/", self.port);
        assert!(words[4].contains(&port), "{last}");
        (words[3].to_string(), words[4].to_string())
    }
}

/// curl with `pin`; returns (exit status, HTTP status, body).
pub(crate) fn curl(pin: Option<&str>, url: &str, extra: &[&str]) -> (i32, u16, Vec<u8>) {
    let mut c = Command::new("curl");
    c.args([
        "-sSk",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(pin) = pin {
        c.args(["--pinnedpubkey", pin]);
    }
    let out = c.args(extra).arg(url).output().unwrap();
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[split + 1..])
        .parse()
        .unwrap_or(0);
    body.truncate(split);
    (out.status.code().unwrap_or(-1), code, body)
}

pub(crate) fn post(pin: &str, url: &str, file: &Path) -> (i32, u16, Vec<u8>) {
    let data = format!("@{}", file.display());
    curl(
        Some(pin),
        url,
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
        ],
    )
}

pub(crate) fn with_secret(url: &str, secret: &str) -> String {
    let (head, _) = url.rsplit_once('.').unwrap();
    format!("{head}.{secret}")
}

/// A corosync.conf for `cluster` with `nodes` nodes.
pub(crate) fn conf(dir: &Path, cluster: &str, nodes: u32) -> PathBuf {
    let mut text =
        format!("totem {{\n\tversion: 2\n\tcluster_name: {cluster}\n}}\n\nnodelist {{\n");
    for i in 1..=nodes {
        text += &format!(
            "\tnode {{\n\t\tname: n{i}\n\t\tnodeid: {i}\n\t\tring0_addr: 10.0.0.{i}\n\t}}\n"
        );
    }
    text += "}\n\nquorum {\n\tprovider: corosync_votequorum\n\ttwo_node: 1\n}\n";
    let path = dir.join(format!("{cluster}.conf"));
    std::fs::write(&path, text).unwrap();
    path
}

fn csr(dir: &Path, cn: &str, name: &str) -> PathBuf {
    let (der, _) = testkit::make_request(cn);
    let path = dir.join(name);
    std::fs::write(&path, der).unwrap();
    path
}

pub(crate) fn have_curl() -> bool {
    require_programs(&[("curl", "curl")])
}

#[test]
fn pairing_flow_signs_for_the_bound_cluster_only_and_counts() {
    if !have_curl() {
        return;
    }
    let s = Paired::start("pair-flow");
    let (pin, url) = s.open(&["--nodes", "2", "--address", "127.0.0.1"]);

    // The script, with the right pin.
    let (rc, code, body) = curl(Some(&pin), &url, &[]);
    assert_eq!((rc, code), (0, 200));
    assert!(body.starts_with(b"#!/bin/bash"));
    // A wrong pin: curl refuses before reading anything (exit 90).
    let wrong_pin = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(curl(Some(wrong_pin), &url, &[]).0, 90);
    // Other paths: 404.
    let base = url.split("/pair/").next().unwrap();
    assert_eq!(curl(None, &format!("{base}/"), &[]).1, 404);
    assert_eq!(curl(None, &format!("{base}/pair/"), &[]).1, 404);
    assert_eq!(curl(None, &format!("{url}/nosuch"), &[]).1, 404);

    // Signing before corosync.conf: not bound yet.
    let req = csr(&s.dir, "alpha", "alpha.csr");
    assert_eq!(post(&pin, &format!("{url}/sign?node=n1"), &req).1, 409);
    // corosync.conf binds the window to 'alpha' (2 nodes): the edited file.
    let (_, code, body) = post(
        &pin,
        &format!("{url}/corosync.conf"),
        &conf(&s.dir, "alpha", 2),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let edited = String::from_utf8(body).unwrap();
    assert!(edited.contains("host: 127.0.0.1"), "{edited}");
    assert!(!edited.contains("two_node"), "{edited}");
    // Another cluster's file is refused now.
    assert_eq!(
        post(
            &pin,
            &format!("{url}/corosync.conf"),
            &conf(&s.dir, "beta", 2)
        )
        .1,
        409
    );
    // A request for another cluster name is refused.
    let beta = csr(&s.dir, "beta", "beta.csr");
    assert_eq!(post(&pin, &format!("{url}/sign?node=n1"), &beta).1, 400);

    // Two certificates, then the window is spent: a replay is refused.
    for node in ["n1", "n2"] {
        let (_, code, der) = post(&pin, &format!("{url}/sign?node={node}"), &req);
        assert_eq!(code, 200);
        assert!(der.len() > 100 && der[0] == 0x30, "a DER certificate");
    }
    assert_eq!(post(&pin, &format!("{url}/sign?node=n3"), &req).1, 409);
    let issued = s.store().issued().unwrap();
    let nodes: Vec<(&str, &str, CertState)> = issued
        .iter()
        .map(|e| (e.cluster.as_str(), e.node.as_str(), e.state))
        .collect();
    assert_eq!(
        nodes,
        [
            ("alpha", "n1", CertState::Live),
            ("alpha", "n2", CertState::Live)
        ]
    );

    // The collision guard: a new window for 'alpha' needs --replace.
    let out = s.pair(&["--cluster", "alpha", "--address", "127.0.0.1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--replace"),
        "{out:?}"
    );
    s.open(&["--cluster", "alpha", "--address", "127.0.0.1", "--replace"]);
}

#[test]
fn wrong_tokens_lock_out_and_expired_windows() {
    if !have_curl() {
        return;
    }
    let s = Paired::start("pair-tokens");
    // The server listens on 127.0.0.1: no --address needed.
    let (pin, url) = s.open(&["--nodes", "1"]);
    assert_eq!(curl(Some(&pin), &format!("{url}/status"), &[]).1, 200);
    // Another id: 404; the right id with a wrong secret: 403, then the
    // window closes after too many (410, even for the right secret).
    let (head, tail) = url.rsplit_once("/pair/").unwrap();
    let wrong_id = format!("{head}/pair/00000000.{}", tail.split_once('.').unwrap().1);
    assert_ne!(wrong_id, url);
    assert_eq!(curl(Some(&pin), &wrong_id, &[]).1, 404);
    let bad = with_secret(&url, &"0".repeat(32));
    for _ in 0..4 {
        assert_eq!(curl(Some(&pin), &bad, &[]).1, 403);
    }
    assert_eq!(curl(Some(&pin), &bad, &[]).1, 410);
    assert_eq!(curl(Some(&pin), &url, &[]).1, 410);

    // An expired window.
    let (pin, url) = s.open(&["--ttl", "1"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, code, body) = curl(Some(&pin), &url, &[]);
    assert_eq!(code, 410, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("expired"));
    // The node command as printed (`open` checked its shape), through bash:
    // it says why on stderr and fails, where `curl -f` printed only the code.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("curl -sSk --pinnedpubkey {pin} {url} | bash"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "ERROR: qnetd refused the pairing (HTTP 410): the pairing window has expired"
        ),
        "{stderr}"
    );
}

#[test]
fn oversized_and_slow_requests_are_closed_and_qdevice_is_unaffected() {
    if !have_curl() {
        return;
    }
    let s = Paired::start("pair-limits");
    let (pin, url) = s.open(&["--nodes", "1"]);
    // A body larger than corosync.conf's limit: 413 from the head alone.
    let big = s.dir.join("big");
    std::fs::write(&big, vec![b'#'; 300 * 1024]).unwrap();
    assert_eq!(post(&pin, &format!("{url}/corosync.conf"), &big).1, 413);
    // A huge head: refused (431).
    let header = format!("X-Big: {}", "a".repeat(9000));
    assert_eq!(curl(Some(&pin), &url, &["-H", &header]).1, 431);

    // A slow client: a TLS record header and then nothing. While it hangs,
    // a qdevice client on the same port works.
    let mut slow = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    slow.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut node = crate::support::server::Node::connect(s.port);
    let reply = node.request(build::preinit(1, b"qcluster"));
    assert_eq!(Msg::parse(&reply).unwrap().msg_type, MsgType::PreinitReply);
    let reply = node.request(build::init(&Init::traced_ffsplit(2, 1)));
    assert_eq!(Msg::parse(&reply).unwrap().msg_type, MsgType::InitReply);
    // A pairing request completes meanwhile.
    assert_eq!(curl(Some(&pin), &format!("{url}/status"), &[]).1, 200);
    // The slow one is closed at its deadline (10 s), not kept forever.
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a reply");
    assert!(start.elapsed() < Duration::from_secs(25));
    // Still serving qdevice clients.
    let mut node = crate::support::server::Node::connect(s.port);
    let reply = node.request(build::preinit(1, b"qcluster2"));
    assert_eq!(Msg::parse(&reply).unwrap().msg_type, MsgType::PreinitReply);
}

#[test]
fn pair_refuses_without_tls_or_without_a_daemon() {
    let dir = Scratch::new("pair-off");
    let launch = Launch::ours(&dir, "qnetd").args(&["-s", "off"]);
    let _d = launch.start();
    let out = crate::support::command(BIN, None)
        .args(["pair", "--address", "127.0.0.1", "-p"])
        .arg(launch.socket())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pairing needs TLS") && err.contains("-s off"),
        "{err}"
    );

    // No daemon: a clear message.
    let out = crate::support::command(BIN, None)
        .args(["pair", "-p"])
        .arg(dir.join("nosuch.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is qnetd running?"));
}
