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
        Self::start_with(name, extra, "")
    }

    /// [`Self::start`] with `-S` settings.
    fn start_with(name: &str, extra: &[&str], settings: &str) -> Self {
        let dir = Scratch::new(name);
        let mut args = vec!["-s", "off"];
        args.extend_from_slice(extra);
        let daemon = Launch::ours(&dir, "qnetd")
            .args(&args)
            .settings(settings)
            .start();
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
        Client::connect(self.port)
    }

    /// Sends SIGTERM and returns the exit status and how long it took.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let t0 = Instant::now();
        let status = self.daemon.terminate();
        (status, t0.elapsed())
    }
}

/// A qdevice client over plain TCP (shared with the MQTT tests).
pub(crate) struct Client {
    pub(crate) w: WireClient,
    /// How long a read may wait before the test fails.
    timeout: Duration,
}

impl Client {
    /// Connects to 127.0.0.1:`port`.
    pub(crate) fn connect(port: u16) -> Self {
        Self {
            w: WireClient::connect(port),
            timeout: Duration::from_secs(20),
        }
    }

    pub(crate) fn send(&mut self, m: &Msg<'_>) {
        self.w.send(&build::to_bytes(m));
    }

    /// The next message, or `None` on EOF.
    pub(crate) fn recv(&mut self) -> Option<Vec<u8>> {
        match self.w.next(self.timeout) {
            Recv::Msg(bytes) => Some(bytes),
            Recv::Closed => None,
            Recv::Timeout => panic!("read: nothing within {:?}", self.timeout),
        }
    }

    pub(crate) fn expect(&mut self, ty: MsgType) -> Vec<u8> {
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

    pub(crate) fn join_cluster(&mut self, cluster: &[u8], node_id: u32) {
        self.send(&build::preinit(1, cluster));
        self.expect(MsgType::PreinitReply);
        self.send(&build::init(&Init::traced_ffsplit(2, node_id)));
        let r = self.expect(MsgType::InitReply);
        assert_eq!(
            Msg::parse(&r).unwrap().reply_error_code,
            Some(ReplyErrorCode::NoError)
        );
    }

    pub(crate) fn echo(&mut self, seq: u32) {
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

#[test]
fn idle_socket_flood_does_not_push_out_real_clients() {
    let server = Server::start_with("flood", &["-m", "6"], "max_preinit_clients_per_addr=0");
    let mut real = [server.connect(), server.connect()];
    real[0].join(1);
    real[1].join(2);
    // Ten idle sockets for four free slots: each one past the limit closes
    // the oldest connection that has not finished INIT.
    let mut idle: Vec<Client> = (0..10).map(|_| server.connect()).collect();
    // A real client still gets in (closing another idle socket)...
    let mut late = server.connect();
    late.join(3);
    // ...the oldest idle sockets were closed, the clients past INIT never.
    for (i, s) in idle.iter_mut().enumerate().take(7) {
        assert!(s.recv().is_none(), "idle socket {i} must be closed");
    }
    real[0].echo(1);
    real[1].echo(2);
    late.echo(3);
    // The three idle sockets left finish INIT: six clients past INIT, and
    // no connection before INIT left to close...
    for (node_id, s) in (10..).zip(&mut idle[7..]) {
        s.join(node_id);
    }
    // ...a new connection is refused, as by the reference.
    let mut extra = server.connect();
    assert!(
        extra.recv().is_none(),
        "a connection past -m must be closed"
    );
    real[0].echo(4);
}

#[test]
fn connections_before_init_are_limited_per_address() {
    let server = Server::start_with("peraddr", &[], "max_preinit_clients_per_addr=2");
    let mut a = server.connect();
    let _b = server.connect();
    let mut c = server.connect();
    assert!(
        c.recv().is_none(),
        "a third connection before INIT must be closed"
    );
    // A connection past INIT no longer counts.
    a.join(1);
    let mut d = server.connect();
    d.join(2);
    let _e = server.connect();
    let mut f = server.connect();
    assert!(
        f.recv().is_none(),
        "b and e are before INIT: f must be closed"
    );
    a.echo(1);
    d.echo(2);
}

#[test]
fn a_silent_socket_is_closed_at_the_init_deadline() {
    // Long enough for `real` to join under qemu on a busy machine.
    let server = Server::start_with("deadline", &[], "init_timeout=2000");
    let mut real = server.connect();
    real.join(1);
    let mut silent = server.connect();
    assert!(silent.recv().is_none(), "a silent socket must be closed");
    // The same deadline passed for the client past INIT: it stays.
    real.echo(1);
    // A client that sent part of PREINIT and then nothing is closed too.
    let mut slow = server.connect();
    slow.w
        .stream
        .write_all(&build::to_bytes(&build::preinit(1, b"slow"))[..7])
        .unwrap();
    assert!(slow.recv().is_none(), "a stalled PREINIT must be closed");
    real.echo(2);
}

/// The state letter of `/proc/PID/stat` (`T` when stopped).
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Work budget per wake-up, by counting in the server's log: one client's
/// burst of messages waits in the socket while the server is stopped, a
/// second client connects behind it; once resumed, the server serves the
/// second client after at most one budget of the first client's bytes.
#[test]
fn a_burst_from_one_client_is_served_in_budgeted_rounds() {
    use crate::support::server::{Kind, Server as LogServer};
    use std::net::TcpStream;
    const MSG: usize = 4096;
    const BURST: &str = "unsupported msg type 32752";
    let dir = Scratch::new("budget");
    let server = LogServer::start(
        Kind::Ours,
        &dir,
        "budget",
        free_ports(1)[0],
        "max_client_send_buffers=10000",
    );
    let pid = server.child.id();
    let mut flood = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Messages of an unknown type: each one is logged, skipped without
    // being stored, and answered with a short SERVER_ERROR.
    let mut msg = vec![0x7f, 0xf0];
    msg.extend_from_slice(&u32::try_from(MSG - 6).unwrap().to_be_bytes());
    msg.resize(MSG, 0);
    // A warm-up burst of another unknown type, fully handled before the
    // test: the server has accepted this client, and the kernel has grown
    // the socket buffers beyond one budget.
    let mut warm = msg.clone();
    warm[1] = 0xf1;
    const WARM: usize = 2048;
    for _ in 0..WARM {
        flood.write_all(&warm).unwrap();
    }
    let start = Instant::now();
    while server
        .log_text()
        .matches("unsupported msg type 32753")
        .count()
        < WARM
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "warm-up not handled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, "-STOP");
    while proc_state(pid) != 'T' {
        std::thread::yield_now();
    }
    // Fill the socket buffers while the server sleeps.
    flood.set_nonblocking(true).unwrap();
    let mut sent = 0;
    let mut rest: &[u8] = &[];
    loop {
        match flood.write(&msg) {
            Ok(n) if n == MSG => sent += 1,
            Ok(n) => {
                rest = &msg[n..];
                sent += 1;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    let budget_msgs = qnetd::net::READ_BUDGET / MSG + 1;
    assert!(
        sent > budget_msgs + 16,
        "only {sent} messages fit in the socket buffers: the test cannot tell"
    );
    let other = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let other_line = format!("Client {} connected", other.local_addr().unwrap());
    signal(pid, "-CONT");
    flood.set_nonblocking(false).unwrap();
    flood.write_all(rest).unwrap();
    // Wait until the server logged every message of the burst.
    let start = Instant::now();
    let text = loop {
        let text = server.log_text();
        let skipped = text.matches(BURST).count();
        if skipped >= sent && text.contains(&other_line) {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let before = text[..text.find(&other_line).unwrap()]
        .matches(BURST)
        .count();
    eprintln!("budget test: sent {sent}, before {before}");
    assert!(
        before <= budget_msgs,
        "{before} of {sent} messages of one client were handled before another client's connection (budget: {budget_msgs})"
    );
    drop(flood);
    drop(other);
}
