//! A scripted `corosync-qdevice` look-alike: N simulated clients over plain
//! TCP (std only), each with a reader thread that records everything the
//! server sends, in order, with a timestamp.
//!
//! * Requests are built with the project codec ([`qnetd::proto::Msg`]) the
//!   way a 3.0.3 client builds them: one sequence counter for everything but
//!   echo (PREINIT = 1, INIT = 2, ...), a separate echo counter, and
//!   VOTE_INFO_REPLY echoing the VOTE_INFO's seq.
//! * VOTE_INFO is answered automatically by the reader thread (as the real
//!   client does), unless the client is switched to manual replies; then the
//!   seqs queue up until the script replies (late replies).
//! * After a successful INIT the reader thread keeps the connection alive
//!   with its own ECHO_REQUESTs (seqs from [`KEEPALIVE_SEQ_BASE`]) so that
//!   scripts longer than the dead-peer timeout (1.5 × heartbeat) do not lose
//!   clients by accident. Their exact ECHO_REPLYs are recorded as
//!   [`EventKind::KeepaliveReply`] and ignored by the comparison; stopping
//!   the keepalive ([`Client::set_keepalive`]) is how a script goes silent.
//!
//! All clients of one run share a [`Shared`] event log, so the runner can
//! wait for "the server has answered and everybody has been quiet for a
//! while" and attribute every received message to the script step during
//! which it arrived.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a network test client reads the real clock"
)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qnetd::proto::types::u16_array_bytes;
use qnetd::proto::{
    DecisionAlgorithm, Heuristics, Msg, MsgType, NodeInfo, NodeListType, NodeState, Quorate,
    ReplyErrorCode, RingId, SUPPORTED_MESSAGES, SUPPORTED_OPTIONS, TieBreaker, U16Array,
};

mod describe;
#[allow(
    unused_imports,
    reason = "each test binary uses a different part of the support code"
)]
pub(crate) use describe::{describe, msg_type_name};

/// First seq of the keepalive ECHO_REQUESTs ("KA" in the high bytes), far
/// away from anything a script uses.
pub(crate) const KEEPALIVE_SEQ_BASE: u32 = 0x4b41_0000;

/// How often the keepalive sends an ECHO_REQUEST. Well below the smallest
/// dead-peer timeout (1.5 × 1000 ms).
pub(crate) const KEEPALIVE_EVERY: Duration = Duration::from_millis(300);

/// Supported messages 0..17 as a 3.0.3 client sends them.
pub(crate) static INIT_SUPPORTED_MESSAGES: [u8; 36] = u16_array_bytes(SUPPORTED_MESSAGES);
/// Supported options 0..23 as a 3.0.3 client sends them.
pub(crate) static INIT_SUPPORTED_OPTIONS: [u8; 48] = u16_array_bytes(SUPPORTED_OPTIONS);

/// Encodes a message with the project codec.
pub(crate) fn encode(msg: &Msg<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; msg.buffer_len()];
    let n = msg.emit(&mut buf).expect("encode test message");
    buf.truncate(n);
    buf
}

/// Builds a node list of plain node ids.
pub(crate) fn nodes(ids: &[u32]) -> Vec<NodeInfo> {
    ids.iter().map(|&id| NodeInfo::new(id)).collect()
}

/// Builds a quorum node list: every id with the given state.
pub(crate) fn nodes_with_state(ids: &[u32], state: NodeState) -> Vec<NodeInfo> {
    ids.iter()
        .map(|&id| NodeInfo {
            node_state: state,
            ..NodeInfo::new(id)
        })
        .collect()
}

/// Where a request's MSG_SEQ_NUMBER comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqMode {
    /// The client's counter (the echo counter for ECHO_REQUEST; the oldest
    /// unanswered VOTE_INFO for VOTE_INFO_REPLY).
    Auto,
    /// No seq option at all.
    Omit,
    /// This value.
    Fixed(u32),
}

/// The INIT options, each optional so that broken INITs can be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InitFields {
    /// SUPPORTED_MESSAGES and SUPPORTED_OPTIONS (0..17 / 0..23).
    pub supported_lists: bool,
    /// NODE_ID.
    pub node_id: Option<u32>,
    /// DECISION_ALGORITHM (raw, so unsupported values can be sent).
    pub algorithm: Option<u16>,
    /// HEARTBEAT_INTERVAL in ms.
    pub heartbeat: Option<u32>,
    /// TIE_BREAKER.
    pub tie_breaker: Option<TieBreaker>,
    /// RING_ID.
    pub ring: Option<RingId>,
}

/// One request of the script, before sequence numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Req {
    /// PREINIT with an optional cluster name.
    Preinit {
        /// CLUSTER_NAME.
        cluster: Option<Vec<u8>>,
    },
    /// STARTTLS.
    StartTls,
    /// INIT.
    Init(InitFields),
    /// SET_OPTION.
    SetOption {
        /// HEARTBEAT_INTERVAL.
        heartbeat: Option<u32>,
        /// KEEP_ACTIVE_PARTITION_TIE_BREAKER.
        kap: Option<bool>,
    },
    /// ECHO_REQUEST.
    Echo,
    /// NODE_LIST.
    NodeList {
        /// NODE_LIST_TYPE (`None` to omit it).
        kind: Option<NodeListType>,
        /// RING_ID.
        ring: Option<RingId>,
        /// CONFIG_VERSION.
        config_version: Option<u64>,
        /// QUORATE.
        quorate: Option<Quorate>,
        /// NODE_INFOs.
        nodes: Vec<NodeInfo>,
        /// HEURISTICS (`None` = undefined = absent).
        heuristics: Option<Heuristics>,
    },
    /// ASK_FOR_VOTE.
    AskForVote,
    /// VOTE_INFO_REPLY.
    VoteInfoReply,
    /// HEURISTICS_CHANGE.
    HeuristicsChange(Option<Heuristics>),
    /// Any bytes, sent as they are.
    Raw(Vec<u8>),
    /// Several requests built in order and written with one write.
    Batch(Vec<Self>),
    /// Any bytes, sent `chunk` bytes at a time with a pause in between.
    RawChunked {
        /// The bytes.
        bytes: Vec<u8>,
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes in ms.
        pause_ms: u64,
    },
}

impl Req {
    /// Whether the server answers this request with exactly one message
    /// (a reply or an error) that is not a VOTE_INFO.
    pub(crate) fn expects_reply(&self) -> bool {
        !matches!(self, Self::VoteInfoReply)
    }
}

/// What happened, from one client's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// The client connected from this local port.
    Connected(u16),
    /// The client sent these bytes (`auto`: by the reader thread, i.e. an
    /// automatic VOTE_INFO_REPLY).
    Sent {
        /// The bytes.
        bytes: Vec<u8>,
        /// Sent automatically.
        auto: bool,
    },
    /// The client closed its connection on purpose.
    Disconnected,
    /// A complete message from the server.
    Recv(Vec<u8>),
    /// The exact reply to a keepalive ECHO_REQUEST (not compared).
    KeepaliveReply,
    /// The server closed the connection (EOF or reset).
    Closed,
    /// The reply of the management socket to a command, with client
    /// addresses replaced by client labels.
    Ipc(String),
}

impl EventKind {
    /// Whether this is something the server did (and so is compared).
    pub(crate) fn is_from_server(&self) -> bool {
        matches!(self, Self::Recv(_) | Self::Closed | Self::Ipc(_))
    }
}

/// One entry of the shared event log.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Time since the start of the run.
    pub t: Duration,
    /// The script step that was running.
    pub step: usize,
    /// Index of the client in the scenario.
    pub client: usize,
    /// What happened.
    pub kind: EventKind,
}

/// The event log and clock shared by all clients of one run.
#[derive(Debug)]
pub(crate) struct Shared {
    start: Instant,
    step: AtomicUsize,
    events: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Shared {
    /// A new, empty log whose clock starts now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            step: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        })
    }

    /// Sets the step that new events are attributed to.
    pub(crate) fn set_step(&self, step: usize) {
        self.step.store(step, Ordering::SeqCst);
    }

    /// Appends an event.
    pub(crate) fn record(&self, client: usize, kind: EventKind) {
        let mut events = lock(&self.events);
        events.push(Event {
            t: self.start.elapsed(),
            step: self.step.load(Ordering::SeqCst),
            client,
            kind,
        });
        self.changed.notify_all();
    }

    /// A copy of the log.
    pub(crate) fn snapshot(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// Number of events so far.
    pub(crate) fn len(&self) -> usize {
        lock(&self.events).len()
    }

    /// Waits until `done(events)` holds or `timeout` passes; returns whether
    /// it held.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Event]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut events = lock(&self.events);
        loop {
            if done(&events) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            events = self
                .changed
                .wait_timeout(events, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until no server event (and no automatic reply) has been logged
    /// for `quiet`, counting from `since` at the earliest; at most `max`.
    pub(crate) fn wait_quiet(&self, since: Instant, quiet: Duration, max: Duration) {
        let deadline = Instant::now() + max;
        let mut events = lock(&self.events);
        loop {
            let last = events
                .iter()
                .rev()
                .find(|e| {
                    e.kind.is_from_server() || matches!(e.kind, EventKind::Sent { auto: true, .. })
                })
                .map(|e| self.start + e.t);
            let until = (last.map_or(since, |t| t.max(since)) + quiet).min(deadline);
            let now = Instant::now();
            if now >= until {
                return;
            }
            events = self
                .changed
                .wait_timeout(events, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The clock reading of an event.
    pub(crate) fn instant_of(&self, e: &Event) -> Instant {
        self.start + e.t
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Mutable per-connection state shared with the reader thread.
#[derive(Debug, Default)]
struct State {
    next_seq: u32,
    echo_seq: u32,
    auto_vote_reply: bool,
    pending_vote_infos: VecDeque<u32>,
    keepalive_wanted: bool,
    keepalive_on: bool,
    keepalive_seq: u32,
    keepalive_sent: VecDeque<Vec<u8>>,
    last_keepalive: Option<Instant>,
    closing: bool,
}

/// One simulated qdevice connection.
#[derive(Debug)]
pub(crate) struct Client {
    idx: usize,
    stream: Arc<Mutex<TcpStream>>,
    state: Arc<Mutex<State>>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    /// Connects client number `idx` of the run to `addr`.
    ///
    /// `keepalive`: start keepalive echoes once INIT succeeds.
    /// `auto_vote_reply`: answer VOTE_INFO at once.
    pub(crate) fn connect(
        idx: usize,
        addr: SocketAddr,
        shared: Arc<Shared>,
        keepalive: bool,
        auto_vote_reply: bool,
    ) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        let read_half = stream.try_clone()?;
        read_half.set_read_timeout(Some(Duration::from_millis(25)))?;
        let local_port = stream.local_addr()?.port();
        let stream = Arc::new(Mutex::new(stream));
        let state = Arc::new(Mutex::new(State {
            next_seq: 1,
            auto_vote_reply,
            keepalive_wanted: keepalive,
            keepalive_seq: KEEPALIVE_SEQ_BASE,
            ..State::default()
        }));
        shared.record(idx, EventKind::Connected(local_port));
        let reader = {
            let stream = Arc::clone(&stream);
            let state = Arc::clone(&state);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("qclient-{idx}"))
                .spawn(move || reader_loop(idx, read_half, &stream, &state, &shared))?
        };
        Ok(Self {
            idx,
            stream,
            state,
            shared,
            reader: Some(reader),
        })
    }

    /// Builds the bytes of `req` with this client's counters.
    pub(crate) fn build(&self, req: &Req, seq: SeqMode) -> Vec<u8> {
        let mut st = lock(&self.state);
        build(&mut st, req, seq)
    }

    /// Sends `req`; returns the bytes sent. The send is logged before the
    /// first byte goes out, so every reply is logged after it.
    pub(crate) fn send(&self, req: &Req, seq: SeqMode) -> Vec<u8> {
        let bytes = self.build(req, seq);
        self.shared.record(
            self.idx,
            EventKind::Sent {
                bytes: bytes.clone(),
                auto: false,
            },
        );
        let mut s = lock(&self.stream);
        // A write to a connection the server closed fails; the reader
        // thread records the close.
        match req {
            Req::RawChunked {
                chunk, pause_ms, ..
            } => {
                for part in bytes.chunks((*chunk).max(1)) {
                    let _ = s.write_all(part);
                    std::thread::sleep(Duration::from_millis(*pause_ms));
                }
            }
            _ => {
                let _ = s.write_all(&bytes);
            }
        }
        bytes
    }

    /// Switches automatic VOTE_INFO_REPLY on or off.
    pub(crate) fn set_auto_vote_reply(&self, on: bool) {
        lock(&self.state).auto_vote_reply = on;
    }

    /// Starts or stops the keepalive echoes (stopping them makes the client
    /// silent, so the server's dead-peer detection will drop it).
    pub(crate) fn set_keepalive(&self, on: bool) {
        let mut st = lock(&self.state);
        st.keepalive_wanted = on;
        st.keepalive_on = on && st.keepalive_on;
    }

    /// Number of VOTE_INFOs not answered yet (manual mode).
    pub(crate) fn pending_vote_infos(&self) -> usize {
        lock(&self.state).pending_vote_infos.len()
    }

    /// Closes the connection on purpose.
    pub(crate) fn disconnect(mut self) {
        self.close();
    }

    fn close(&mut self) {
        lock(&self.state).closing = true;
        {
            let s = lock(&self.stream);
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.close();
        }
    }
}

fn next(counter: &mut u32) -> u32 {
    let v = *counter;
    *counter = counter.wrapping_add(1);
    v
}

fn build(st: &mut State, req: &Req, seq: SeqMode) -> Vec<u8> {
    let seq_for = |st: &mut State, auto: fn(&mut State) -> Option<u32>| match seq {
        SeqMode::Auto => auto(st),
        SeqMode::Omit => None,
        SeqMode::Fixed(v) => Some(v),
    };
    let main_seq = |st: &mut State| Some(next(&mut st.next_seq));
    match req {
        Req::Raw(bytes) | Req::RawChunked { bytes, .. } => bytes.clone(),
        Req::Batch(reqs) => reqs.iter().flat_map(|r| build(st, r, seq)).collect(),
        Req::Preinit { cluster } => {
            let mut m = Msg::new(MsgType::Preinit);
            m.seq = seq_for(st, main_seq);
            m.cluster_name = cluster.as_deref();
            encode(&m)
        }
        Req::StartTls => {
            let mut m = Msg::new(MsgType::StartTls);
            m.seq = seq_for(st, main_seq);
            encode(&m)
        }
        Req::Init(f) => {
            let mut m = Msg::new(MsgType::Init);
            m.seq = seq_for(st, main_seq);
            if f.supported_lists {
                m.supported_messages = U16Array::from_be_bytes(&INIT_SUPPORTED_MESSAGES);
                m.supported_options = U16Array::from_be_bytes(&INIT_SUPPORTED_OPTIONS);
            }
            m.node_id = f.node_id;
            m.decision_algorithm = f.algorithm.map(DecisionAlgorithm::from);
            m.heartbeat_interval = f.heartbeat;
            m.tie_breaker = f.tie_breaker;
            m.ring_id = f.ring;
            encode(&m)
        }
        Req::SetOption { heartbeat, kap } => {
            let mut m = Msg::new(MsgType::SetOption);
            m.seq = seq_for(st, main_seq);
            m.heartbeat_interval = *heartbeat;
            m.keep_active_partition_tie_breaker = *kap;
            encode(&m)
        }
        Req::Echo => {
            let mut m = Msg::new(MsgType::EchoRequest);
            m.seq = seq_for(st, |st| {
                st.echo_seq = st.echo_seq.wrapping_add(1);
                Some(st.echo_seq)
            });
            encode(&m)
        }
        Req::NodeList {
            kind,
            ring,
            config_version,
            quorate,
            nodes,
            heuristics,
        } => {
            let mut m = Msg::new(MsgType::NodeList);
            m.seq = seq_for(st, main_seq);
            m.node_list_type = *kind;
            m.ring_id = *ring;
            m.config_version = *config_version;
            m.quorate = *quorate;
            m.nodes = qnetd::proto::Nodes::from_slice(nodes);
            m.heuristics = *heuristics;
            encode(&m)
        }
        Req::AskForVote => {
            let mut m = Msg::new(MsgType::AskForVote);
            m.seq = seq_for(st, main_seq);
            encode(&m)
        }
        Req::VoteInfoReply => {
            let mut m = Msg::new(MsgType::VoteInfoReply);
            m.seq = seq_for(st, |st| st.pending_vote_infos.pop_front());
            encode(&m)
        }
        Req::HeuristicsChange(h) => {
            let mut m = Msg::new(MsgType::HeuristicsChange);
            m.seq = seq_for(st, main_seq);
            m.heuristics = *h;
            encode(&m)
        }
    }
}

fn reader_loop(
    idx: usize,
    mut read_half: TcpStream,
    stream: &Mutex<TcpStream>,
    state: &Mutex<State>,
    shared: &Shared,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read_half.read(&mut chunk) {
            Ok(0) => {
                if !lock(state).closing {
                    shared.record(idx, EventKind::Closed);
                }
                return;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                while let Some(frame) = super::wire::take_frame(&mut buf) {
                    on_frame(idx, frame, stream, state, shared);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                if !lock(state).closing {
                    shared.record(idx, EventKind::Closed);
                }
                return;
            }
        }
        keepalive_tick(stream, state);
    }
}

fn keepalive_tick(stream: &Mutex<TcpStream>, state: &Mutex<State>) {
    let mut st = lock(state);
    if !st.keepalive_on || st.closing {
        return;
    }
    if st
        .last_keepalive
        .is_some_and(|t| t.elapsed() < KEEPALIVE_EVERY)
    {
        return;
    }
    let mut m = Msg::new(MsgType::EchoRequest);
    m.seq = Some(next(&mut st.keepalive_seq));
    let bytes = encode(&m);
    st.last_keepalive = Some(Instant::now());
    st.keepalive_sent.push_back(bytes.clone());
    drop(st);
    let _ = lock(stream).write_all(&bytes);
}

fn on_frame(
    idx: usize,
    frame: Vec<u8>,
    stream: &Mutex<TcpStream>,
    state: &Mutex<State>,
    shared: &Shared,
) {
    let parsed = Msg::parse(&frame).ok();
    let msg_type = parsed.as_ref().map(|m| m.msg_type);
    let mut st = lock(state);
    if msg_type == Some(MsgType::EchoReply) {
        let is_keepalive = st.keepalive_sent.front().is_some_and(|req| {
            req.len() == frame.len() && req[2..] == frame[2..] && frame[..2] == [0, 9]
        });
        if is_keepalive {
            st.keepalive_sent.pop_front();
            drop(st);
            shared.record(idx, EventKind::KeepaliveReply);
            return;
        }
    }
    if msg_type == Some(MsgType::InitReply)
        && parsed.as_ref().and_then(|m| m.reply_error_code) == Some(ReplyErrorCode::NoError)
        && st.keepalive_wanted
    {
        st.keepalive_on = true;
        st.last_keepalive = Some(Instant::now());
    }
    let vote_info_seq = match &parsed {
        Some(m) if m.msg_type == MsgType::VoteInfo => Some(m.seq),
        _ => None,
    };
    drop(st);
    shared.record(idx, EventKind::Recv(frame));
    if let Some(seq) = vote_info_seq {
        let mut st = lock(state);
        if st.auto_vote_reply {
            let mut m = Msg::new(MsgType::VoteInfoReply);
            m.seq = seq;
            let bytes = encode(&m);
            drop(st);
            shared.record(
                idx,
                EventKind::Sent {
                    bytes: bytes.clone(),
                    auto: true,
                },
            );
            let _ = lock(stream).write_all(&bytes);
        } else if let Some(seq) = seq {
            st.pending_vote_infos.push_back(seq);
        }
    }
}
