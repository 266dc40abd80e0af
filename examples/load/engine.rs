//! The event loop: N simulated `corosync-qdevice` clients on one `mio`
//! poll, each running the message flow of protocol.md §4.7 with the
//! project codec.
//!
//! Every client is one node of a 2-node ffsplit cluster (clients `2c` and
//! `2c + 1` are nodes 1 and 2 of cluster `c`). The flow per connection:
//! PREINIT → [STARTTLS + TLS handshake] → INIT → SET_OPTION(KAP) + initial
//! config list + membership list + quorum list (pipelined, as the real client
//! does) → heartbeats. Every VOTE_INFO is answered at once with a
//! VOTE_INFO_REPLY. Replies are checked against a FIFO of the requests sent:
//! type, sequence number, and for echoes the exact bytes (§2.8).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use qnetd::proto::types::u16_array_bytes;
use qnetd::proto::{
    DecisionAlgorithm, Frame, Header, Msg, MsgType, NodeInfo, NodeListType, NodeState, Nodes,
    Quorate, ReplyErrorCode, RingId, SUPPORTED_MESSAGES, SUPPORTED_OPTIONS, Status, TieBreaker,
    TieBreakerMode, TlsSupported, U16Array, Vote,
};
use rustls::client::ClientHandshake;
use rustls::crypto::cipher::OutboundPlain;
use rustls::pki_types::ServerName;
use rustls::split::{ReceiveTraffic, ReceiveTrafficState, SendTraffic};
use rustls::{ClientConfig, ClientSide, VecInput};

use crate::procfs::{self, Sample};

mod client;
mod phases;
mod replies;

const MSGS: [u8; 36] = u16_array_bytes(SUPPORTED_MESSAGES);
const OPTS: [u8; 48] = u16_array_bytes(SUPPORTED_OPTIONS);
/// What every 3.0.3 client needs the server to accept (protocol.md §1.4).
const MIN_REQUEST_SIZE: u32 = 32768;
/// Largest frame the load generator accepts before calling it an error.
const MAX_FRAME: u32 = 1 << 20;
/// The ring id every cluster starts with (`1.4`, as in the golden traces).
const FIRST_RING_SEQ: u64 = 4;

/// Why a client stopped.
#[derive(Debug)]
enum Fail {
    /// The connection went away (connect error, reset, EOF): a real client
    /// would reconnect.
    Drop(String),
    /// The server broke the protocol, or answered with an error.
    Protocol(String),
}

fn proto(s: impl Into<String>) -> Fail {
    Fail::Protocol(s.into())
}

fn tls_fail(e: rustls::Error) -> Fail {
    Fail::Protocol(format!("TLS: {e}"))
}

/// Where a client is in its connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum St {
    /// Not started yet, or waiting for a reconnect.
    Idle,
    Connecting,
    Preinit,
    Tls,
    Init,
    /// INIT done; SET_OPTION and the three node lists are in flight.
    Lists,
    Ready,
    Failed,
}

impl St {
    fn in_setup(self) -> bool {
        matches!(
            self,
            Self::Connecting | Self::Preinit | Self::Tls | Self::Init | Self::Lists
        )
    }
}

/// What an echo request was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    Heartbeat,
    Load,
    Latency,
    Round,
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
enum Req {
    Preinit,
    Init,
    SetOption,
    List(NodeListType, RingId),
    Echo(Echo),
}

impl Req {
    fn reply_type(self) -> MsgType {
        match self {
            Self::Preinit => MsgType::PreinitReply,
            Self::Init => MsgType::InitReply,
            Self::SetOption => MsgType::SetOptionReply,
            Self::List(..) => MsgType::NodeListReply,
            Self::Echo(_) => MsgType::EchoReply,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u32,
    req: Req,
    sent: Instant,
}

/// The last ACK/NACK a client got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) vote: Vote,
    pub(crate) ring: RingId,
}

enum Transport {
    Plain,
    Handshake {
        hs: Option<Box<ClientHandshake>>,
        input: VecInput,
    },
    Traffic {
        send: SendTraffic,
        recv: Option<ReceiveTraffic<ClientSide>>,
        input: VecInput,
    },
}

/// One simulated qdevice.
pub(crate) struct Client {
    idx: u32,
    stream: Option<TcpStream>,
    pub(crate) st: St,
    cluster: u32,
    node_id: u32,
    transport: Transport,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    seq: u32,
    echo_seq: u32,
    pending: VecDeque<Pending>,
    ring: RingId,
    /// Whether the current membership is only this node (a split).
    solo: bool,
    decision: Option<Decision>,
    /// When the expected decision of the running storm arrived.
    decision_at: Option<Instant>,
    /// What the running vote storm expects, and whether it came.
    expect: Option<Decision>,
    met: bool,
    hb_pending: bool,
    generation: u32,
}

/// What the closed-loop and fixed-rate phases do with echo replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Idle,
    Closed,
    Rate,
    Rounds,
}

/// Counters of the whole run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) ready: usize,
    pub(crate) in_setup: usize,
    pub(crate) attempts: u64,
    pub(crate) dropped: u64,
    pub(crate) load_replies: u64,
    pub(crate) load_out: u64,
    pub(crate) latency_sent: u64,
    pub(crate) latency_replies: u64,
    pub(crate) heartbeats: u64,
    pub(crate) vote_infos: u64,
    pub(crate) rounds_done: usize,
    pub(crate) storm_left: usize,
    pub(crate) last_ready: Option<Instant>,
    pub(crate) last_decision: Option<Instant>,
}

/// Errors, kept short.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    pub(crate) protocol: u64,
    pub(crate) drops: u64,
    pub(crate) first: Vec<String>,
}

impl Errors {
    pub(crate) fn note(&mut self, s: String) {
        if self.first.len() < 20 {
            self.first.push(s);
        }
    }
}

/// Settings of the engine.
pub(crate) struct Config {
    pub(crate) addr: SocketAddr,
    pub(crate) clients: usize,
    pub(crate) cluster_prefix: String,
    pub(crate) heartbeat_ms: u32,
    pub(crate) heartbeats: bool,
    pub(crate) retry_delay: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<(Vec<Arc<ClientConfig>>, ServerName<'static>)>,
    pub(crate) server_pid: Option<u32>,
    pub(crate) seed: u64,
}

/// Everything but the client table, so that a client and the context can be
/// borrowed together.
pub(crate) struct Ctx {
    addr: SocketAddr,
    pub(crate) mode: Mode,
    pub(crate) stats: Stats,
    pub(crate) errors: Errors,
    pub(crate) hist: Histogram<u64>,
    heartbeat: Option<Duration>,
    hb_ms: u32,
    hb_heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    retry_heap: BinaryHeap<Reverse<(Instant, u32)>>,
    retry_delay: Duration,
    /// Set-up deadlines of connection attempts: (deadline, client, generation).
    setup_heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    connect_timeout: Duration,
    names: Vec<String>,
    tls: Option<(Vec<Arc<ClientConfig>>, ServerName<'static>)>,
    scratch: Vec<u8>,
    rng: u64,
    /// Rounds phase: the clients taking turns, the echoes to do, and who
    /// sends next.
    round_list: Vec<u32>,
    round_target: usize,
    baton: Option<u32>,
    depth: u32,
}

impl Ctx {
    fn rand_below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if n == 0 { 0 } else { r % n }
    }
}

/// Server and load-generator samples around a measured window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    pub(crate) secs: f64,
    pub(crate) server: (Sample, Sample),
    pub(crate) me: (Sample, Sample),
}

/// What a vote storm measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Storm {
    pub(crate) window: Window,
    /// From the first list written to the last expected VOTE_INFO read;
    /// `None` when a decision was missing.
    pub(crate) last: Option<Duration>,
    /// The same, median over clients.
    pub(crate) median: Duration,
    /// How long writing all the node lists took (the load generator's share).
    pub(crate) sent: Duration,
}

/// The engine.
pub(crate) struct Engine {
    poll: Poll,
    events: Events,
    pub(crate) clients: Vec<Client>,
    pub(crate) ctx: Ctx,
    queue: VecDeque<u32>,
    concurrency: usize,
    ring_seq: u64,
    rate_next: Option<(Instant, Duration, u64)>,
    ready_list: Vec<u32>,
    pub(crate) send_lag_max: Duration,
    server_pid: Option<u32>,
    ticks: u64,
}

impl Engine {
    pub(crate) fn new(cfg: Config) -> io::Result<Self> {
        let clusters = cfg.clients.div_ceil(2);
        let names = (0..clusters)
            .map(|c| format!("{}{:05}", cfg.cluster_prefix, c))
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| Client {
                idx: u32::try_from(i).unwrap_or(u32::MAX),
                stream: None,
                st: St::Idle,
                cluster: u32::try_from(i / 2).unwrap_or(u32::MAX),
                node_id: if i % 2 == 0 { 1 } else { 2 },
                transport: Transport::Plain,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                wpos: 0,
                seq: 0,
                echo_seq: 0,
                pending: VecDeque::new(),
                ring: RingId {
                    node_id: 1,
                    seq: FIRST_RING_SEQ,
                },
                solo: false,
                decision: None,
                decision_at: None,
                expect: None,
                met: false,
                hb_pending: false,
                generation: 0,
            })
            .collect();
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            clients,
            ctx: Ctx {
                addr: cfg.addr,
                mode: Mode::Idle,
                stats: Stats::default(),
                errors: Errors::default(),
                hist: Histogram::new_with_bounds(1, 60_000_000, 3)
                    .map_err(|e| io::Error::other(e.to_string()))?,
                heartbeat: cfg
                    .heartbeats
                    .then(|| Duration::from_millis(u64::from(cfg.heartbeat_ms))),
                hb_ms: cfg.heartbeat_ms,
                hb_heap: BinaryHeap::new(),
                retry_heap: BinaryHeap::new(),
                setup_heap: BinaryHeap::new(),
                connect_timeout: cfg.connect_timeout,
                retry_delay: cfg.retry_delay,
                names,
                tls: cfg.tls,
                scratch: vec![0; 64 * 1024],
                round_list: Vec::new(),
                round_target: 0,
                baton: None,
                rng: cfg.seed | 1,
                depth: 1,
            },
            queue: VecDeque::new(),
            concurrency: 1,
            ring_seq: FIRST_RING_SEQ,
            rate_next: None,
            ready_list: Vec::new(),
            send_lag_max: Duration::ZERO,
            server_pid: cfg.server_pid,
            ticks: procfs::clock_ticks(),
        })
    }

    /// Samples the server (if known) and this process.
    pub(crate) fn sample(&self) -> (Sample, Sample) {
        let server = self
            .server_pid
            .and_then(|p| procfs::sample(Some(p), self.ticks).ok())
            .unwrap_or_default();
        let mut me = procfs::sample(None, self.ticks).unwrap_or_default();
        me.sys_busy_ms = procfs::system_busy_ms(self.ticks);
        (server, me)
    }

    fn window(start: (Sample, Sample), end: (Sample, Sample), t0: Instant, t1: Instant) -> Window {
        Window {
            secs: t1.duration_since(t0).as_secs_f64(),
            server: (start.0, end.0),
            me: (start.1, end.1),
        }
    }

    /// Whether any protocol error (or drop) happened.
    pub(crate) fn failed(&self) -> bool {
        self.ctx.errors.protocol > 0 || self.ctx.errors.drops > 0
    }

    /// Runs the loop until `done` or `until`. Returns whether `done` held.
    fn run(&mut self, until: Instant, done: &dyn Fn(&Self) -> bool) -> bool {
        loop {
            let now = Instant::now();
            self.fire_timers(now);
            self.start_connections();
            if done(self) {
                return true;
            }
            if now >= until {
                return false;
            }
            let mut wake = until;
            if let Some(Reverse((t, _, _))) = self.ctx.hb_heap.peek() {
                wake = wake.min(*t);
            }
            if let Some(Reverse((t, _))) = self.ctx.retry_heap.peek() {
                wake = wake.min(*t);
            }
            if let Some(Reverse((t, _, _))) = self.ctx.setup_heap.peek() {
                wake = wake.min(*t);
            }
            if let Some((t, _, _)) = self.rate_next {
                wake = wake.min(t);
            }
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.ctx.errors.protocol += 1;
                self.ctx.errors.note(format!("poll: {e}"));
                return false;
            }
            let Self {
                events,
                clients,
                ctx,
                ..
            } = self;
            for ev in events.iter() {
                let i = ev.token().0;
                let Some(c) = clients.get_mut(i) else {
                    continue;
                };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                c.on_event(i, ctx, readable, ev.is_writable());
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        if let Some(i) = self.ctx.baton.take()
            && let Some(c) = self.clients.get_mut(i as usize)
        {
            c.send_echo_now(i as usize, Echo::Round, &mut self.ctx);
        }
        // Reconnects go to the front of the queue, within the concurrency.
        while let Some(&Reverse((t, i))) = self.ctx.retry_heap.peek() {
            if t > now {
                break;
            }
            self.ctx.retry_heap.pop();
            self.queue.push_front(i);
        }
        // Like corosync-qdevice's connect_timeout: give up an attempt that is
        // not through in time, and reconnect.
        while let Some(&Reverse((t, i, generation))) = self.ctx.setup_heap.peek() {
            if t > now {
                break;
            }
            self.ctx.setup_heap.pop();
            let Some(c) = self.clients.get_mut(i as usize) else {
                continue;
            };
            if c.generation == generation && c.st.in_setup() {
                let ms = self.ctx.connect_timeout.as_millis();
                c.fail(
                    i as usize,
                    &mut self.ctx,
                    Fail::Drop(format!("not set up within {ms} ms ({:?})", c.st)),
                );
            }
        }
        while let Some(&Reverse((t, i, generation))) = self.ctx.hb_heap.peek() {
            if t > now {
                break;
            }
            self.ctx.hb_heap.pop();
            let Some(c) = self.clients.get_mut(i as usize) else {
                continue;
            };
            if c.generation != generation || !matches!(c.st, St::Lists | St::Ready) {
                continue;
            }
            if let Some(hb) = self.ctx.heartbeat {
                self.ctx.hb_heap.push(Reverse((t + hb, i, generation)));
            }
            c.heartbeat(i as usize, &mut self.ctx);
        }
        if let Some((mut next, step, mut k)) = self.rate_next {
            let n = self.ready_list.len() as u64;
            while next <= now && n > 0 {
                let i = self.ready_list[(k % n) as usize] as usize;
                if let Some(c) = self.clients.get_mut(i) {
                    let lag = Instant::now().saturating_duration_since(next);
                    self.send_lag_max = self.send_lag_max.max(lag);
                    c.send_echo_now(i, Echo::Latency, &mut self.ctx);
                    self.ctx.stats.latency_sent += 1;
                }
                k += 1;
                next += step;
            }
            self.rate_next = Some((next, step, k));
        }
    }

    fn start_connections(&mut self) {
        while self.ctx.stats.in_setup < self.concurrency {
            let Some(i) = self.queue.pop_front() else {
                break;
            };
            let i = i as usize;
            if let Some(c) = self.clients.get_mut(i) {
                c.connect(i, self.poll.registry(), &mut self.ctx);
            }
        }
    }
}
