//! Server processes (ours and the reference `corosync-qnetd`), simulated
//! `corosync-qdevice` clients over TCP, and tool runs, for the management
//! interface tests.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qnetd::proto::build;

use super::wire::WireClient;
use qnetd::proto::{
    DecisionAlgorithm, Heuristics, Msg, MsgType, NodeInfo, NodeListType, RingId, TieBreaker,
    TieBreakerMode,
};

/// The reference tool's installed path, as the Debian package puts it
/// (an `argv[0]` the tool tests call it by).
pub const REFERENCE_TOOL: &str = "/usr/bin/corosync-qnetd-tool";
pub const OURS: &str = env!("CARGO_BIN_EXE_qnetd");

/// The reference server and tool, or `None` after recording the current
/// test as skipped (see [`super::skip`]).
pub fn reference() -> Option<(PathBuf, PathBuf)> {
    let found = super::skip::reference_server().zip(super::skip::reference_tool());
    if found.is_none() {
        super::skip::skip(
            "the reference corosync-qnetd is not installed",
            super::skip::INSTALL_REFERENCE,
        );
    }
    found
}

/// A scratch directory removed on drop, panics included: every test's
/// temporary directory (short path: socket names are limited to 107
/// bytes). Derefs to its [`Path`].
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/qnetd-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Free TCP ports on 127.0.0.1 (held together so they differ), never
/// handed out before in this process: a port released by one test and
/// grabbed by a concurrent one would make two servers race for it.
pub fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        held.push(l);
        if HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            ports.push(port);
        }
    }
    ports
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Reference,
}

impl Kind {
    /// The program to start (the reference must be installed: see
    /// [`reference`]).
    pub fn exe(self) -> PathBuf {
        match self {
            Self::Ours => PathBuf::from(OURS),
            Self::Reference => super::skip::reference_server().expect("reference installed"),
        }
    }
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    pub child: Child,
    pub port: u16,
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
    status: Option<ExitStatus>,
}

/// Sends one raw request line and returns everything the server sent
/// before closing (`None` if the connection could not be made). A request
/// without LF is followed by a half-close.
pub fn ipc(socket: &Path, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).ok()?;
    if !request.contains(&b'\n') {
        // No line end: the server waits for more; EOF makes it give up.
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ECONNRESET after the reply when request bytes were left unread.
            Err(_) => return Some(out),
        }
    }
}

impl Server {
    /// Starts `kind` with `-f -l 127.0.0.1 -p PORT -d -s off -S
    /// lock_file=..,local_socket_file=..[,settings]` (see
    /// [`super::Launch`]) and waits until its local socket answers. If
    /// `port` is in use by then it takes another: the port is `self.port`.
    pub fn start(kind: Kind, dir: &Scratch, name: &str, port: u16, settings: &str) -> Self {
        let socket = dir.path(&format!("{name}.sock"));
        let lock = dir.path(&format!("{name}.pid"));
        let mut port = port;
        for _ in 0..5 {
            let mut server = Self::spawn(kind, dir, name, port, &lock, &socket, settings);
            match super::wait_ready(&mut server.child, &socket, Duration::from_secs(10)) {
                Ok(()) => return server,
                // The free port was taken meanwhile (e.g. as the local port
                // of another test's connection): use `server.port`.
                Err(Some(_)) if server.log_text().contains("in use") => {
                    port = free_ports(1)[0];
                }
                Err(Some(status)) => panic!(
                    "{kind:?} server exited early ({status}): {}",
                    server.log_text()
                ),
                Err(None) => panic!("{kind:?} server not ready: {}", server.log_text()),
            }
        }
        panic!("{kind:?} server: five ports in use");
    }

    /// Starts without waiting.
    pub fn spawn(
        kind: Kind,
        dir: &Scratch,
        name: &str,
        port: u16,
        lock: &Path,
        socket: &Path,
        settings: &str,
    ) -> Self {
        let log = dir.path(&format!("{name}.log"));
        let child = super::Launch::program(&kind.exe(), dir, name)
            .files(lock, socket)
            // The reference's `-m` default (unlimited) for both: ours
            // differs, and the tool samples were captured with it.
            .args(&["-d", "-s", "off", "-m", "0"])
            .settings(settings)
            .command(port)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("RUST_LOG", "debug")
            .spawn()
            .unwrap();
        Self {
            kind,
            child,
            port,
            socket: socket.to_path_buf(),
            lock: lock.to_path_buf(),
            log,
            status: None,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A tool run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRun {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
}

/// Runs `exe` with `argv[0]` = `arg0`.
pub fn run_tool(exe: &Path, arg0: &str, args: &[&str]) -> ToolRun {
    let out = super::command(exe, Some(arg0))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ToolRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&out.status),
    }
}

/// Our binary under the name `corosync-qnetd-tool` (a symlink in `dir`).
pub fn our_tool_link(dir: &Scratch) -> PathBuf {
    let link = dir.path("corosync-qnetd-tool");
    if !link.exists() {
        std::os::unix::fs::symlink(OURS, &link).unwrap();
    }
    link
}

// ------------------------------------------------------------ simulated nodes

/// One simulated `corosync-qdevice` connection, speaking like the 3.0.3
/// client: requests with increasing sequence numbers, VOTE_INFOs answered
/// at once.
pub struct Node {
    wire: WireClient,
    seq: u32,
    /// Our end's port: the server shows it as the client address.
    pub local_port: u16,
}

impl Node {
    pub fn connect(port: u16) -> Self {
        let wire = WireClient::connect(port);
        let local_port = wire.local_port();
        Self {
            wire,
            seq: 0,
            local_port,
        }
    }

    /// The next complete message, or `None` after `timeout` of silence
    /// (or at EOF).
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.wire.recv(timeout)
    }

    /// Handles a VOTE_INFO; returns the message if it was something else.
    fn absorb(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        let msg = Msg::parse(&bytes).unwrap();
        if msg.msg_type == MsgType::VoteInfo {
            let mut reply = Msg::new(MsgType::VoteInfoReply);
            reply.seq = msg.seq;
            self.wire.send(&build::to_bytes(&reply));
            return None;
        }
        Some(bytes)
    }

    /// Sends `msg` with the next sequence number and returns its reply.
    pub fn request(&mut self, mut msg: Msg<'_>) -> Vec<u8> {
        self.seq += 1;
        msg.seq = Some(self.seq);
        self.wire.send(&build::to_bytes(&msg));
        loop {
            let bytes = self
                .recv(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no reply to {:?}", msg.msg_type));
            if let Some(bytes) = self.absorb(bytes) {
                let reply = Msg::parse(&bytes).unwrap();
                assert_ne!(reply.msg_type, MsgType::ServerError, "{msg:?}");
                assert_eq!(reply.seq, Some(self.seq), "{reply:?}");
                return bytes;
            }
        }
    }

    /// Answers VOTE_INFOs until `quiet` passes without a message.
    pub fn drain(&mut self, quiet: Duration) {
        while let Some(bytes) = self.recv(quiet) {
            let _ = self.absorb(bytes);
        }
    }

    /// An ECHO_REQUEST, so the server's dead-peer detection stays quiet.
    pub fn keepalive(&mut self) {
        let _ = self.request(Msg::new(MsgType::EchoRequest));
    }

    /// Whether the server closed the connection (EOF within `timeout`,
    /// without any more data).
    pub fn closed_by_server(&mut self, timeout: Duration) -> bool {
        self.wire.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 64];
        matches!(self.wire.stream.read(&mut buf), Ok(0))
    }

    pub fn preinit(&mut self, cluster: &[u8]) {
        let mut m = Msg::new(MsgType::Preinit);
        m.cluster_name = Some(cluster);
        self.request(m);
    }

    pub fn init(
        &mut self,
        node_id: u32,
        algorithm: DecisionAlgorithm,
        heartbeat: u32,
        tie_breaker: TieBreaker,
        ring_id: RingId,
    ) {
        // The sequence number is set when the message is sent.
        let m = build::init(&build::Init {
            seq: 0,
            node_id,
            algorithm,
            heartbeat_interval: heartbeat,
            tie_breaker,
            ring_id,
        });
        self.request(m);
    }

    pub fn kap(&mut self) {
        let mut m = Msg::new(MsgType::SetOption);
        m.keep_active_partition_tie_breaker = Some(true);
        self.request(m);
    }

    pub fn node_list(
        &mut self,
        list_type: NodeListType,
        nodes: &[NodeInfo],
        f: impl FnOnce(&mut Msg<'_>),
    ) {
        let mut m = Msg::new(MsgType::NodeList);
        m.node_list_type = Some(list_type);
        m.nodes = qnetd::proto::Nodes::from_slice(nodes);
        f(&mut m);
        self.request(m);
    }
}

pub fn ids(ids: &[u32]) -> Vec<NodeInfo> {
    ids.iter().map(|&n| NodeInfo::new(n)).collect()
}

pub const LOWEST: TieBreaker = TieBreaker {
    mode: TieBreakerMode::Lowest,
    node_id: 0,
};

/// The clients of `tool_samples.txt`: cluster "testcluster" (nodes 1 and 2,
/// ffsplit, lowest, KAP on, config version 5, ring 1.8) and cluster "other"
/// (node 3, lms, tie-breaker node 3, heartbeat 5000, heuristics pass, ring
/// 3.14). Returns them in node order.
pub fn sample_clients(port: u16) -> Vec<Node> {
    let ring = RingId { node_id: 1, seq: 8 };
    let mut n1 = Node::connect(port);
    let mut n2 = Node::connect(port);
    for (node, id) in [(&mut n1, 1), (&mut n2, 2)] {
        node.preinit(b"testcluster");
        node.init(id, DecisionAlgorithm::Ffsplit, 8000, LOWEST, ring);
        node.kap();
        node.node_list(NodeListType::InitialConfig, &ids(&[1, 2]), |m| {
            m.config_version = Some(5);
        });
    }
    for node in [&mut n1, &mut n2] {
        node.node_list(NodeListType::Membership, &ids(&[1, 2]), |m| {
            m.ring_id = Some(ring);
        });
    }
    let mut n3 = Node::connect(port);
    let ring3 = RingId {
        node_id: 3,
        seq: 0x14,
    };
    n3.preinit(b"other");
    let tb3 = TieBreaker {
        mode: TieBreakerMode::NodeId,
        node_id: 3,
    };
    n3.init(3, DecisionAlgorithm::Lms, 5000, tb3, ring3);
    n3.node_list(NodeListType::InitialConfig, &ids(&[3, 4, 5]), |_| {});
    n3.node_list(NodeListType::Membership, &ids(&[3, 4, 5]), |m| {
        m.ring_id = Some(ring3);
        m.heuristics = Some(Heuristics::Pass);
    });
    let mut nodes = vec![n1, n2, n3];
    for n in &mut nodes {
        n.drain(Duration::from_millis(150));
    }
    nodes
}

/// Replaces the server port and the clients' ports in a tool's output by
/// names, so outputs of two servers compare.
pub fn normalize(text: &str, server_port: u16, nodes: &[Node]) -> String {
    let mut t = text.replace(
        &format!("127.0.0.1:{server_port}\n"),
        "127.0.0.1:SERVER_PORT\n",
    );
    for (i, n) in nodes.iter().enumerate() {
        t = t.replace(
            &format!("127.0.0.1:{}\n", n.local_port),
            &format!("127.0.0.1:NODE{}_PORT\n", i + 1),
        );
    }
    t
}
