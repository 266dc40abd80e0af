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
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qnetd::proto::build;
use qnetd::proto::{
    DecisionAlgorithm, Frame, Heuristics, Msg, MsgType, NodeInfo, NodeListType, RingId, Status,
    TieBreaker, TieBreakerMode,
};

pub const REFERENCE_SERVER: &str = "/usr/bin/corosync-qnetd";
pub const REFERENCE_TOOL: &str = "/usr/bin/corosync-qnetd-tool";
pub const OURS: &str = env!("CARGO_BIN_EXE_qnetd");

/// Whether the reference binaries are installed; prints why not.
pub fn reference_available() -> bool {
    let ok = Path::new(REFERENCE_SERVER).exists() && Path::new(REFERENCE_TOOL).exists();
    if !ok {
        eprintln!(
            "SKIPPED: the reference {REFERENCE_SERVER} / {REFERENCE_TOOL} (Debian package corosync-qnetd) is not installed"
        );
    }
    ok
}

/// A scratch directory removed on drop (short path: socket names are
/// limited to 107 bytes).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/qnetd-mgmt-{}-{}-{name}",
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

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Free TCP ports on 127.0.0.1 (held together so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Reference,
}

impl Kind {
    pub fn exe(self) -> &'static str {
        match self {
            Self::Ours => OURS,
            Self::Reference => REFERENCE_SERVER,
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
    /// Starts `kind` with `-f -s off -l 127.0.0.1 -p PORT -S
    /// lock_file=..,local_socket_file=..[,settings]` and waits until its
    /// local socket answers.
    pub fn start(kind: Kind, dir: &Scratch, name: &str, port: u16, settings: &str) -> Self {
        let socket = dir.path(&format!("{name}.sock"));
        let lock = dir.path(&format!("{name}.pid"));
        let mut server = Self::spawn(kind, dir, name, port, &lock, &socket, settings);
        server.wait_ready();
        server
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
        let mut s = format!(
            "lock_file={},local_socket_file={}",
            lock.display(),
            socket.display()
        );
        if !settings.is_empty() {
            s.push(',');
            s.push_str(settings);
        }
        let child = super::command(kind.exe(), None)
            .args(["-f", "-d", "-s", "off", "-l", "127.0.0.1", "-p"])
            .arg(port.to_string())
            // The reference's `-m` default (unlimited) for both: ours
            // differs, and the tool samples were captured with it.
            .args(["-m", "0"])
            .arg("-S")
            .arg(s)
            .stdin(Stdio::null())
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

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(reply) = ipc(&self.socket, b"status\n")
                && reply.starts_with(b"OK\n")
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{:?} server exited early ({status}): {}",
                    self.kind,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{:?} server not ready: {}", self.kind, self.log_text());
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

fn frame(msg: &Msg<'_>) -> Vec<u8> {
    let mut buf = vec![0; msg.buffer_len()];
    let n = msg.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// One simulated `corosync-qdevice` connection, speaking like the 3.0.3
/// client: requests with increasing sequence numbers, VOTE_INFOs answered
/// at once.
pub struct Node {
    stream: TcpStream,
    seq: u32,
    rx: Vec<u8>,
    /// Our end's port: the server shows it as the client address.
    pub local_port: u16,
}

impl Node {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let local_port = stream.local_addr().unwrap().port();
        Self {
            stream,
            seq: 0,
            rx: Vec::new(),
            local_port,
        }
    }

    /// The next complete message, or `None` after `timeout` of silence
    /// (or at EOF).
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Status::Complete(n) = Frame::<&[u8]>::check(&self.rx) {
                return Some(self.rx.drain(..n).collect());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Handles a VOTE_INFO; returns the message if it was something else.
    fn absorb(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        let msg = Msg::parse(&bytes).unwrap();
        if msg.msg_type == MsgType::VoteInfo {
            let mut reply = Msg::new(MsgType::VoteInfoReply);
            reply.seq = msg.seq;
            self.stream.write_all(&frame(&reply)).unwrap();
            return None;
        }
        Some(bytes)
    }

    /// Sends `msg` with the next sequence number and returns its reply.
    pub fn request(&mut self, mut msg: Msg<'_>) -> Vec<u8> {
        self.seq += 1;
        msg.seq = Some(self.seq);
        self.stream.write_all(&frame(&msg)).unwrap();
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
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 64];
        matches!(self.stream.read(&mut buf), Ok(0))
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
