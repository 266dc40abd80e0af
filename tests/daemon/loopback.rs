//! The real binary on loopback: start-up, a client session, misbehaving
//! clients that must not disturb others, `-m`, the lock file, the CLI's
//! errors and a clean SIGTERM.

#![allow(
    clippy::disallowed_methods,
    reason = "tests of the real binary use the wall clock for deadlines"
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use qnetd::proto::build::{self, Init};
use qnetd::proto::{Msg, MsgType, ReplyErrorCode, RingId, Vote};

use crate::support::server::{Scratch, free_ports};
use crate::support::wire::{Recv, WireClient};
use crate::support::{Daemon, Launch};

const BIN: &str = env!("CARGO_BIN_EXE_qnetd");

struct Server {
    daemon: Daemon,
    port: u16,
    dir: Scratch,
}

impl Server {
    fn start(name: &str, extra: &[&str]) -> Self {
        let dir = Scratch::new(name);
        let mut args = vec!["-s", "off"];
        args.extend_from_slice(extra);
        let daemon = Launch::ours(&dir, "qnetd").args(&args).start();
        Self {
            port: daemon.port,
            daemon,
            dir,
        }
    }

    /// A second server on the same lock file and socket, output captured.
    fn second(&self) -> Command {
        let mut cmd = Launch::ours(&self.dir, "qnetd")
            .args(&["-s", "off"])
            .command(free_ports(1)[0]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }

    fn connect(&self) -> Client {
        Client {
            w: WireClient::connect(self.port),
            timeout: Duration::from_secs(20),
        }
    }

    /// Sends SIGTERM and returns the exit status and how long it took.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let t0 = Instant::now();
        let status = self.daemon.terminate();
        (status, t0.elapsed())
    }
}

struct Client {
    w: WireClient,
    /// How long a read may wait before the test fails.
    timeout: Duration,
}

impl Client {
    fn send(&mut self, m: &Msg<'_>) {
        self.w.send(&build::to_bytes(m));
    }

    /// The next message, or `None` on EOF.
    fn recv(&mut self) -> Option<Vec<u8>> {
        match self.w.next(self.timeout) {
            Recv::Msg(bytes) => Some(bytes),
            Recv::Closed => None,
            Recv::Timeout => panic!("read: nothing within {:?}", self.timeout),
        }
    }

    fn expect(&mut self, ty: MsgType) -> Vec<u8> {
        let bytes = self
            .recv()
            .unwrap_or_else(|| panic!("EOF while waiting for {ty}"));
        let m = Msg::parse(&bytes).unwrap();
        assert_eq!(m.msg_type, ty, "{m:?}");
        bytes
    }

    fn join(&mut self, node_id: u32) {
        self.join_cluster(b"loop", node_id);
    }

    fn join_cluster(&mut self, cluster: &[u8], node_id: u32) {
        self.send(&build::preinit(1, cluster));
        self.expect(MsgType::PreinitReply);
        self.send(&build::init(&Init::traced_ffsplit(2, node_id)));
        let r = self.expect(MsgType::InitReply);
        assert_eq!(
            Msg::parse(&r).unwrap().reply_error_code,
            Some(ReplyErrorCode::NoError)
        );
    }

    fn echo(&mut self, seq: u32) {
        self.send(&build::echo_request(seq));
        let r = self.expect(MsgType::EchoReply);
        assert_eq!(Msg::parse(&r).unwrap().seq, Some(seq));
    }
}

#[test]
fn session_over_tcp_and_clean_sigterm() {
    let server = Server::start("session", &[]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.join(1);
    b.join(2);
    for (c, k) in [(&mut a, 1u32), (&mut b, 2)] {
        c.send(&build::config_list(3, true, None, &[1, 2]));
        let r = c.expect(MsgType::NodeListReply);
        assert_eq!(
            Msg::parse(&r).unwrap().vote,
            Some(Vote::AskLater),
            "node {k}"
        );
    }
    a.send(&build::membership_list(
        4,
        RingId { node_id: 1, seq: 4 },
        &[1, 2],
        qnetd::proto::Heuristics::Undefined,
    ));
    a.expect(MsgType::NodeListReply);
    b.send(&build::membership_list(
        4,
        RingId { node_id: 1, seq: 4 },
        &[1, 2],
        qnetd::proto::Heuristics::Undefined,
    ));
    let vi = b.expect(MsgType::VoteInfo);
    assert_eq!(Msg::parse(&vi).unwrap().vote, Some(Vote::Ack));
    b.expect(MsgType::NodeListReply);
    a.expect(MsgType::VoteInfo);
    a.echo(1);
    b.echo(1);
    let (status, took) = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
}

#[test]
fn misbehaving_clients_do_not_disturb_others() {
    let server = Server::start("misbehave", &[]);
    let mut good = server.connect();
    good.join(1);
    // Garbage, an over-long header, an unknown type, a truncated message
    // followed by a disconnect, and a client that never reads.
    let mut bad = server.connect();
    bad.w.stream.write_all(&[0xff; 64]).unwrap();
    good.echo(1);
    let mut long = server.connect();
    long.w.stream.write_all(&[0, 8, 0, 0, 0x9c, 0x40]).unwrap();
    long.w.stream.write_all(&vec![0u8; 40_000]).unwrap();
    good.echo(2);
    let mut half = server.connect();
    half.w
        .stream
        .write_all(&build::to_bytes(&build::preinit(1, b"x"))[..10])
        .unwrap();
    drop(half);
    let mut deaf = server.connect();
    deaf.join_cluster(b"deaf", 1);
    for seq in 0..2000 {
        let _ = deaf
            .w
            .stream
            .write_all(&build::to_bytes(&build::echo_request(seq)));
    }
    good.echo(3);
    // The over-long message got its error and the stream is still in sync.
    let e = long.expect(MsgType::ServerError);
    assert_eq!(
        Msg::parse(&e).unwrap().reply_error_code,
        Some(ReplyErrorCode::MessageTooLong)
    );
    long.send(&build::echo_request(5));
    let e = long.expect(MsgType::ServerError);
    assert_eq!(
        Msg::parse(&e).unwrap().reply_error_code,
        Some(ReplyErrorCode::InitRequired)
    );
    // A 4 GiB announced body is consumed, not buffered: nothing comes back
    // and the server stays healthy.
    let mut huge = server.connect();
    huge.w
        .stream
        .write_all(&[0, 8, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    huge.w.stream.write_all(&vec![0u8; 1 << 20]).unwrap();
    good.echo(5);
    drop((bad, long, deaf, huge));
    good.echo(4);
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn max_clients_closes_extra_connections() {
    let server = Server::start("maxclients", &["-m", "1"]);
    // Let the server see the start-up probe connection go away.
    std::thread::sleep(Duration::from_millis(300));
    let mut first = server.connect();
    first.join(1);
    let mut second = server.connect();
    assert!(second.recv().is_none(), "second connection must see EOF");
    first.echo(1);
}

#[test]
fn second_instance_on_the_same_lock_file_refuses() {
    let server = Server::start("lock", &[]);
    let out: Output = server.second().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Another instance is running"), "{err}");
    server.connect().join(1);
}

#[test]
fn cli_errors_exit_1_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["-p", "0"], "host port must be in range 1-65535"),
        (&["-s", "required"], "tls must be one of on, off, req"),
        (
            &["-c", "x"],
            "client_cert_required should be on/yes/1, off/no/0",
        ),
        (&["-S", "nope=1"], "Unknown option 'nope'"),
        (
            &["-S", "max_client_send_buffers=1"],
            "Invalid value '1' for option 'max_client_send_buffers'",
        ),
    ];
    for (args, msg) in cases {
        let out = crate::support::command(BIN, None)
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    for flag in ["-h", "-v"] {
        let out = crate::support::command(BIN, None)
            .arg(flag)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(!out.stdout.is_empty());
    }
}

/// Out of file descriptors, connections wait in the backlog; when
/// descriptors are free again they are served without a new connection to
/// wake the listener (edge-triggered epoll gives no second edge).
#[test]
fn connections_wait_out_a_descriptor_shortage() {
    if std::env::var_os("QNETD_TEST_EMULATED").is_some() {
        // prlimit would limit qemu-user, not our binary.
        crate::support::skip::skip("prlimit cannot limit a binary run under qemu-user", "");
        return;
    }
    if !crate::support::skip::require_programs(&[("prlimit", "util-linux")]) {
        return;
    }
    let dir = Scratch::new("emfile");
    let port = free_ports(1)[0];
    let mut child = Launch::ours(&dir, "qnetd")
        .args(&["-s", "off"])
        .via(&["prlimit", "--nofile=24:24"])
        .command(port)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("qnetd.sock").exists() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let preinit = build::to_bytes(&build::preinit(1, b"x"));
    let mut clients: Vec<Client> = (0..30)
        .map(|_| {
            let mut c = Client {
                w: WireClient::connect(port),
                timeout: Duration::from_secs(10),
            };
            c.w.send(&preinit);
            c
        })
        .collect();
    // Some are served, the rest wait; then the first half goes away.
    std::thread::sleep(Duration::from_millis(300));
    let rest = clients.split_off(15);
    drop(clients);
    for (i, mut c) in rest.into_iter().enumerate() {
        let got = c.recv().unwrap_or_else(|| panic!("client {i}: closed"));
        assert_eq!(
            Msg::parse(&got).unwrap().msg_type,
            MsgType::PreinitReply,
            "client {i}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
