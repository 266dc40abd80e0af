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

    /// Connects and sets up every client not yet up, `concurrency` at a
    /// time. Returns the window and whether all clients got ready.
    pub(crate) fn setup(&mut self, concurrency: usize, timeout: Duration) -> (Window, bool) {
        self.concurrency = concurrency.max(1);
        self.queue = (0..self.clients.len())
            .filter(|&i| self.clients[i].st != St::Ready)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let s0 = self.sample();
        let t0 = Instant::now();
        let n = self.clients.len();
        let ok = self.run(t0 + timeout, &|e| e.ctx.stats.ready == n);
        let t1 = if ok {
            self.ctx.stats.last_ready.unwrap_or_else(Instant::now)
        } else {
            Instant::now()
        };
        let s1 = self.sample();
        if !ok {
            self.ctx.errors.protocol += 1;
            let mut states: Vec<(St, usize)> = Vec::new();
            for c in &self.clients {
                match states.iter_mut().find(|(st, _)| *st == c.st) {
                    Some((_, k)) => *k += 1,
                    None => states.push((c.st, 1)),
                }
            }
            self.ctx.errors.note(format!(
                "set-up: only {} of {n} clients ready after {timeout:?} (states: {states:?})",
                self.ctx.stats.ready
            ));
        }
        // Nothing left to connect: stop retrying.
        self.queue.clear();
        self.ctx.retry_heap.clear();
        self.ctx.setup_heap.clear();
        (Self::window(s0, s1, t0, t1), ok)
    }

    /// Waits until every client holds an ACK for its current ring and has no
    /// node list in flight.
    pub(crate) fn settle(&mut self, timeout: Duration) -> bool {
        let ok = self.run(Instant::now() + timeout, &|e| {
            e.clients.iter().all(|c| {
                c.st == St::Ready
                    && c.decision
                        == Some(Decision {
                            vote: Vote::Ack,
                            ring: c.ring,
                        })
                    && c.pending.iter().all(|p| matches!(p.req, Req::Echo(_)))
            })
        });
        if !ok {
            let bad =
                self.clients.iter().enumerate().find(|(_, c)| {
                    c.st != St::Ready || c.decision.map(|d| d.vote) != Some(Vote::Ack)
                });
            self.ctx.errors.protocol += 1;
            self.ctx.errors.note(format!(
                "clients did not settle on ACK within {timeout:?} (first: {:?})",
                bad.map(|(i, c)| (i, c.st, c.decision))
            ));
        }
        ok
    }

    /// Heartbeats only, for `d`.
    pub(crate) fn idle(&mut self, d: Duration) -> Window {
        self.ctx.mode = Mode::Idle;
        let s0 = self.sample();
        let t0 = Instant::now();
        self.run(t0 + d, &|_| false);
        let t1 = Instant::now();
        Self::window(s0, self.sample(), t0, t1)
    }

    /// Closed loop: every client keeps `depth` echoes outstanding for `d`.
    /// Returns the window and the replies received inside it.
    pub(crate) fn closed_loop(&mut self, d: Duration, depth: u32) -> (Window, u64) {
        self.ctx.mode = Mode::Closed;
        self.ctx.depth = depth.max(1);
        let s0 = self.sample();
        let t0 = Instant::now();
        let base = self.ctx.stats.load_replies;
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.st == St::Ready {
                for _ in 0..self.ctx.depth {
                    c.send_echo_now(i, Echo::Load, &mut self.ctx);
                }
            }
        }
        self.run(t0 + d, &|_| false);
        let t1 = Instant::now();
        let s1 = self.sample();
        let replies = self.ctx.stats.load_replies - base;
        self.ctx.mode = Mode::Idle;
        self.drain(|e| e.ctx.stats.load_out == 0, "closed-loop echoes");
        (Self::window(s0, s1, t0, t1), replies)
    }

    /// Fixed rate: `rate` echoes per second spread round-robin over the
    /// clients for `d`; latencies go to `ctx.hist` (microseconds).
    pub(crate) fn fixed_rate(&mut self, rate: u32, d: Duration) -> Window {
        self.ctx.mode = Mode::Rate;
        self.ctx.hist.reset();
        self.send_lag_max = Duration::ZERO;
        self.ready_list = (0..self.clients.len())
            .filter(|&i| self.clients[i].st == St::Ready)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let step = Duration::from_nanos(1_000_000_000 / u64::from(rate.max(1)));
        let s0 = self.sample();
        let t0 = Instant::now();
        self.rate_next = Some((t0, step, 0));
        self.run(t0 + d, &|_| false);
        self.rate_next = None;
        let t1 = Instant::now();
        let s1 = self.sample();
        self.drain(
            |e| e.ctx.stats.latency_replies == e.ctx.stats.latency_sent,
            "fixed-rate echoes",
        );
        self.ctx.mode = Mode::Idle;
        Self::window(s0, s1, t0, t1)
    }

    fn drain(&mut self, done: impl Fn(&Self) -> bool, what: &str) {
        if !self.run(Instant::now() + Duration::from_secs(10), &done) {
            self.ctx.errors.protocol += 1;
            self.ctx
                .errors
                .note(format!("{what}: replies missing 10 s after the phase"));
        }
    }

    /// A vote storm: every cluster splits (each node sees only itself in a
    /// new ring) or heals, all at once.
    pub(crate) fn storm(&mut self, split: bool, timeout: Duration) -> Storm {
        self.ring_seq += 4;
        let seq = self.ring_seq;
        let mut expected = 0;
        for c in &mut self.clients {
            if c.st != St::Ready {
                continue;
            }
            c.solo = split;
            c.ring = RingId {
                node_id: if split { c.node_id } else { 1 },
                seq,
            };
            let vote = if split && c.node_id != 1 {
                Vote::Nack
            } else {
                Vote::Ack
            };
            c.expect = Some(Decision { vote, ring: c.ring });
            c.met = false;
            c.decision_at = None;
            expected += 1;
        }
        self.ctx.stats.storm_left = expected;
        self.ctx.stats.last_decision = None;
        let s0 = self.sample();
        let t0 = Instant::now();
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.st == St::Ready {
                c.send_change(i, &mut self.ctx);
            }
        }
        let sent = t0.elapsed();
        let ok = self.run(t0 + timeout, &|e| e.ctx.stats.storm_left == 0);
        let t1 = Instant::now();
        let s1 = self.sample();
        let mut times: Vec<Duration> = self
            .clients
            .iter()
            .filter_map(|c| c.decision_at.map(|t| t.saturating_duration_since(t0)))
            .collect();
        times.sort_unstable();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        if !ok {
            let missing: Vec<String> = self
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| c.expect.is_some() && !c.met)
                .take(5)
                .map(|(i, c)| format!("client {i} expected {:?} has {:?}", c.expect, c.decision))
                .collect();
            self.ctx.errors.protocol += 1;
            self.ctx.errors.note(format!(
                "vote storm ({}): {} decisions missing after {timeout:?}: {}",
                if split { "split" } else { "heal" },
                self.ctx.stats.storm_left,
                missing.join("; ")
            ));
        }
        for c in &mut self.clients {
            c.expect = None;
        }
        let last = ok.then(|| {
            self.ctx
                .stats
                .last_decision
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(t0))
        });
        // Let the node list replies of the change arrive.
        self.drain(
            |e| {
                e.clients
                    .iter()
                    .all(|c| c.pending.iter().all(|p| matches!(p.req, Req::Echo(_))))
            },
            "vote storm node list replies",
        );
        Storm {
            window: Self::window(s0, s1, t0, t1),
            last,
            median,
            sent,
        }
    }

    /// `k` rounds of heartbeat-like echoes (for callgrind): in each round
    /// every client sends one echo, one client at a time (the next client
    /// sends when the previous reply arrived), so that the server handles
    /// each echo alone, as it does idle heartbeats.
    pub(crate) fn rounds(&mut self, k: u32, timeout: Duration) -> (Window, bool) {
        self.ctx.mode = Mode::Rounds;
        self.ctx.stats.rounds_done = 0;
        self.ctx.round_list = (0..self.clients.len())
            .filter(|&i| self.clients[i].st == St::Ready)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let target = self.ctx.round_list.len() * k as usize;
        self.ctx.round_target = target;
        let s0 = self.sample();
        let t0 = Instant::now();
        self.ctx.baton = self.ctx.round_list.first().copied().filter(|_| target > 0);
        let ok = self.run(t0 + timeout, &|e| e.ctx.stats.rounds_done >= target);
        let t1 = Instant::now();
        self.ctx.mode = Mode::Idle;
        self.ctx.baton = None;
        if !ok {
            self.ctx.errors.protocol += 1;
            self.ctx.errors.note(format!(
                "rounds: {} of {target} echoes after {timeout:?}",
                self.ctx.stats.rounds_done
            ));
        }
        (Self::window(s0, self.sample(), t0, t1), ok)
    }

    /// Closes every connection (RST, so that no TIME_WAIT is left behind).
    pub(crate) fn close_all(&mut self) {
        for c in &mut self.clients {
            if let Some(s) = c.stream.take() {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            c.st = St::Idle;
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("st", &self.st)
            .field("cluster", &self.cluster)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    fn set_st(&mut self, st: St, ctx: &mut Ctx) {
        if self.st.in_setup() {
            ctx.stats.in_setup -= 1;
        }
        if self.st == St::Ready {
            ctx.stats.ready -= 1;
        }
        if st.in_setup() {
            ctx.stats.in_setup += 1;
        }
        if st == St::Ready {
            ctx.stats.ready += 1;
            ctx.stats.last_ready = Some(Instant::now());
        }
        self.st = st;
    }

    fn connect(&mut self, i: usize, registry: &mio::Registry, ctx: &mut Ctx) {
        ctx.stats.attempts += 1;
        self.generation = self.generation.wrapping_add(1);
        self.transport = Transport::Plain;
        self.rbuf.clear();
        self.wbuf.clear();
        self.wpos = 0;
        self.seq = 0;
        self.echo_seq = 0;
        self.pending.clear();
        self.ring = RingId {
            node_id: 1,
            seq: self.ring.seq,
        };
        self.solo = false;
        self.decision = None;
        self.hb_pending = false;
        self.set_st(St::Connecting, ctx);
        ctx.setup_heap.push(Reverse((
            Instant::now() + ctx.connect_timeout,
            self.idx,
            self.generation,
        )));
        let res = TcpStream::connect(ctx.addr).and_then(|mut s| {
            registry.register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)?;
            s.set_nodelay(true)?;
            Ok(s)
        });
        match res {
            Ok(s) => self.stream = Some(s),
            Err(e) => self.fail(i, ctx, Fail::Drop(format!("connect: {e}"))),
        }
    }

    fn on_event(&mut self, i: usize, ctx: &mut Ctx, readable: bool, writable: bool) {
        if self.stream.is_none() {
            return;
        }
        if let Err(f) = self.on_event_inner(ctx, readable, writable) {
            self.fail(i, ctx, f);
        }
    }

    fn on_event_inner(
        &mut self,
        ctx: &mut Ctx,
        readable: bool,
        writable: bool,
    ) -> Result<(), Fail> {
        if self.st == St::Connecting {
            let Some(s) = self.stream.as_ref() else {
                return Ok(());
            };
            match s.take_error() {
                Ok(Some(e)) | Err(e) => return Err(Fail::Drop(format!("connect: {e}"))),
                Ok(None) => {}
            }
            match s.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Fail::Drop(format!("connect: {e}"))),
            }
            self.set_st(St::Preinit, ctx);
            self.send_preinit(ctx)?;
        }
        if readable {
            self.read(ctx)?;
        }
        let _ = writable;
        self.flush()
    }

    fn fail(&mut self, i: usize, ctx: &mut Ctx, f: Fail) {
        let was_setup = self.st.in_setup();
        self.set_st(St::Failed, ctx);
        if let Some(s) = self.stream.take() {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        self.transport = Transport::Plain;
        let who = format!(
            "client {i} (cluster {}, node {})",
            ctx.names
                .get(self.cluster as usize)
                .map_or("?", String::as_str),
            self.node_id
        );
        match f {
            Fail::Drop(reason) if was_setup => {
                // A real qdevice reconnects after a random delay.
                ctx.stats.dropped += 1;
                ctx.errors.drops += 1;
                ctx.errors
                    .note(format!("{who} dropped during set-up: {reason}"));
                let ms = u64::try_from(ctx.retry_delay.as_millis()).unwrap_or(u64::MAX);
                let at = Instant::now() + Duration::from_millis(ctx.rand_below(ms));
                ctx.retry_heap
                    .push(Reverse((at, u32::try_from(i).unwrap_or(u32::MAX))));
                self.st = St::Idle;
            }
            Fail::Drop(reason) => {
                ctx.errors.protocol += 1;
                ctx.errors.note(format!("{who} disconnected: {reason}"));
            }
            Fail::Protocol(reason) => {
                ctx.errors.protocol += 1;
                ctx.errors.note(format!("{who}: {reason}"));
            }
        }
        // Outstanding echoes of a dead client will never come back.
        for p in self.pending.drain(..) {
            match p.req {
                Req::Echo(Echo::Load) => ctx.stats.load_out -= 1,
                Req::Echo(Echo::Latency) => ctx.stats.latency_sent -= 1,
                _ => {}
            }
        }
        if self.expect.is_some() && !self.met {
            self.expect = None;
            ctx.stats.storm_left -= 1;
        }
    }

    // ---- sending -------------------------------------------------------

    fn queue(&mut self, msg: &Msg<'_>) -> Result<(), Fail> {
        let mut buf = [0u8; 512];
        let n = msg
            .emit(&mut buf)
            .map_err(|e| proto(format!("cannot encode {:?}: {e}", msg.msg_type)))?;
        let bytes = buf.get(..n).unwrap_or_default();
        match &mut self.transport {
            Transport::Plain => self.wbuf.extend_from_slice(bytes),
            Transport::Traffic { send, .. } => send
                .write(OutboundPlain::from(bytes), &mut self.wbuf)
                .map_err(tls_fail)?,
            Transport::Handshake { .. } => {
                return Err(proto("internal: message queued during the TLS handshake"));
            }
        }
        Ok(())
    }

    fn request(&mut self, msg: &Msg<'_>, req: Req) -> Result<(), Fail> {
        self.queue(msg)?;
        self.pending.push_back(Pending {
            seq: msg.seq.unwrap_or(0),
            req,
            sent: Instant::now(),
        });
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn flush(&mut self) -> Result<(), Fail> {
        if self.st == St::Connecting {
            return Ok(());
        }
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.wpos < self.wbuf.len() {
            match s.write(self.wbuf.get(self.wpos..).unwrap_or_default()) {
                Ok(0) => return Err(Fail::Drop("write returned 0".into())),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::Drop(format!("write: {e}"))),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    fn send_preinit(&mut self, ctx: &Ctx) -> Result<(), Fail> {
        let name = ctx
            .names
            .get(self.cluster as usize)
            .map_or(&b""[..], |s| s.as_bytes());
        let mut m = Msg::new(MsgType::Preinit);
        m.seq = Some(self.next_seq());
        m.cluster_name = Some(name);
        self.request(&m, Req::Preinit)
    }

    fn send_init(&mut self, ctx: &Ctx) -> Result<(), Fail> {
        let mut m = Msg::new(MsgType::Init);
        m.seq = Some(self.next_seq());
        m.supported_messages = U16Array::from_be_bytes(&MSGS);
        m.supported_options = U16Array::from_be_bytes(&OPTS);
        m.node_id = Some(self.node_id);
        m.decision_algorithm = Some(DecisionAlgorithm::Ffsplit);
        m.heartbeat_interval = Some(ctx.hb_ms);
        m.tie_breaker = Some(TieBreaker {
            mode: TieBreakerMode::Lowest,
            node_id: 0,
        });
        m.ring_id = Some(self.ring);
        self.request(&m, Req::Init)?;
        Ok(())
    }

    fn node_list(&mut self, ty: NodeListType) -> Result<(), Fail> {
        let mut m = Msg::new(MsgType::NodeList);
        m.seq = Some(self.next_seq());
        m.node_list_type = Some(ty);
        let me = self.node_id;
        let members: &[u32] = if self.solo {
            if me == 1 { &[1] } else { &[2] }
        } else {
            &[1, 2]
        };
        let mut infos = [NodeInfo::new(1), NodeInfo::new(2)];
        let mut count = 2;
        match ty {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                m.config_version = Some(1);
            }
            NodeListType::Membership => {
                m.ring_id = Some(self.ring);
                for (info, &n) in infos.iter_mut().zip(members) {
                    *info = NodeInfo::new(n);
                }
                count = members.len();
            }
            _ => {
                // Quorum: with the qdevice vote the side with node 1 (the
                // lowest id, which ffsplit prefers) stays quorate.
                let quorate = !self.solo || me == 1;
                m.quorate = Some(if quorate {
                    Quorate::Quorate
                } else {
                    Quorate::Inquorate
                });
                for info in &mut infos {
                    info.node_state = if members.contains(&info.node_id) {
                        NodeState::Member
                    } else {
                        NodeState::Dead
                    };
                }
            }
        }
        m.nodes = Nodes::from_slice(infos.get(..count).unwrap_or_default());
        self.request(&m, Req::List(ty, self.ring))
    }

    /// A membership change: new membership list, then the quorum list.
    fn send_change(&mut self, i: usize, ctx: &mut Ctx) {
        let r = self
            .node_list(NodeListType::Membership)
            .and_then(|()| self.node_list(NodeListType::Quorum))
            .and_then(|()| self.flush());
        if let Err(f) = r {
            self.fail(i, ctx, f);
        }
    }

    fn send_echo(&mut self, kind: Echo, ctx: &mut Ctx) -> Result<(), Fail> {
        self.echo_seq = self.echo_seq.wrapping_add(1);
        let mut m = Msg::new(MsgType::EchoRequest);
        m.seq = Some(self.echo_seq);
        self.request(&m, Req::Echo(kind))?;
        if kind == Echo::Load {
            ctx.stats.load_out += 1;
        }
        Ok(())
    }

    fn send_echo_now(&mut self, i: usize, kind: Echo, ctx: &mut Ctx) {
        if let Err(f) = self.send_echo(kind, ctx).and_then(|()| self.flush()) {
            self.fail(i, ctx, f);
        }
    }

    fn heartbeat(&mut self, i: usize, ctx: &mut Ctx) {
        if self.hb_pending {
            // What the real client does: "Server didn't send echo reply
            // message on time", disconnect.
            self.fail(
                i,
                ctx,
                proto(format!(
                    "no echo reply within the heartbeat interval ({} ms)",
                    ctx.hb_ms
                )),
            );
            return;
        }
        self.hb_pending = true;
        self.send_echo_now(i, Echo::Heartbeat, ctx);
    }

    // ---- receiving -----------------------------------------------------

    fn read(&mut self, ctx: &mut Ctx) -> Result<(), Fail> {
        loop {
            let Some(s) = self.stream.as_mut() else {
                return Ok(());
            };
            let (res, cap) = match &mut self.transport {
                Transport::Plain => {
                    let r = s.read(&mut ctx.scratch);
                    if let Ok(n) = r {
                        self.rbuf
                            .extend_from_slice(ctx.scratch.get(..n).unwrap_or_default());
                    }
                    (r, Some(ctx.scratch.len()))
                }
                Transport::Handshake { input, .. } | Transport::Traffic { input, .. } => {
                    (input.read(s), None)
                }
            };
            let n = match res {
                Ok(0) => return Err(Fail::Drop("server closed the connection".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Drop(format!("read: {e}"))),
            };
            if matches!(self.transport, Transport::Handshake { .. }) {
                self.drive_handshake(ctx)?;
            }
            self.drain_tls()?;
            self.process(ctx)?;
            // A short plain read means the socket is drained: Linux epoll
            // signals data arriving later with a new edge. (TLS reads are
            // bounded by VecInput's buffer, so they go on to WouldBlock.)
            if cap.is_some_and(|c| n < c) {
                return Ok(());
            }
        }
    }

    fn drive_handshake(&mut self, ctx: &mut Ctx) -> Result<(), Fail> {
        let Transport::Handshake { hs, input } = &mut self.transport else {
            return Ok(());
        };
        let mut state = *hs
            .take()
            .ok_or_else(|| proto("internal: no handshake state"))?;
        let mut fresh = true;
        loop {
            state = match state {
                ClientHandshake::NeedsInput(ni) => {
                    if !fresh {
                        *hs = Some(Box::new(ClientHandshake::NeedsInput(ni)));
                        return Ok(());
                    }
                    fresh = false;
                    ni.process(input, &mut self.wbuf).map_err(tls_fail)?
                }
                ClientHandshake::VerifyServerIdentity(v) => {
                    // The rest of the server's flight may already be in
                    // `input`: process again before reading the socket.
                    fresh = true;
                    v.with_config(&mut self.wbuf).map_err(tls_fail)?
                }
                ClientHandshake::Complete(split) => {
                    let input = std::mem::take(input);
                    self.transport = Transport::Traffic {
                        send: split.send,
                        recv: Some(split.receive),
                        input,
                    };
                    self.set_st(St::Init, ctx);
                    return self.send_init(ctx);
                }
                _ => return Err(proto("unexpected TLS handshake state")),
            };
        }
    }

    /// Decrypts whatever TLS records are buffered into `rbuf`.
    fn drain_tls(&mut self) -> Result<(), Fail> {
        let Transport::Traffic { send, recv, input } = &mut self.transport else {
            return Ok(());
        };
        let mut rt = recv
            .take()
            .ok_or_else(|| proto("internal: no TLS receiver"))?;
        loop {
            let next = match rt.read(input).map_err(tls_fail)? {
                ReceiveTrafficState::ReadMore(r) => {
                    *recv = Some(r);
                    return Ok(());
                }
                ReceiveTrafficState::Available(mut d) => {
                    self.rbuf.extend_from_slice(d.data());
                    d.into_next()
                }
                ReceiveTrafficState::FlushSender(f) => {
                    send.write(OutboundPlain::new_empty(), &mut self.wbuf)
                        .map_err(tls_fail)?;
                    f.into_next()
                }
                ReceiveTrafficState::CloseNotify => {
                    return Err(Fail::Drop("server sent TLS close_notify".into()));
                }
            };
            rt = match next {
                ReceiveTrafficState::ReadMore(r) => r,
                ReceiveTrafficState::FlushSender(f) => {
                    send.write(OutboundPlain::new_empty(), &mut self.wbuf)
                        .map_err(tls_fail)?;
                    match f.into_next() {
                        ReceiveTrafficState::ReadMore(r) => r,
                        _ => return Err(Fail::Drop("server sent TLS close_notify".into())),
                    }
                }
                ReceiveTrafficState::CloseNotify => {
                    return Err(Fail::Drop("server sent TLS close_notify".into()));
                }
                ReceiveTrafficState::Available(_) => {
                    return Err(proto("internal: unexpected TLS receive state"));
                }
            };
        }
    }

    fn process(&mut self, ctx: &mut Ctx) -> Result<(), Fail> {
        let buf = std::mem::take(&mut self.rbuf);
        let mut off = 0;
        let mut res = Ok(());
        while let Some(rest) = buf.get(off..) {
            let Status::Complete(n) = Frame::<&[u8]>::check(rest) else {
                if let Some(h) = Header::parse(rest)
                    && h.payload_len > MAX_FRAME
                {
                    res = Err(proto(format!("frame of {} bytes announced", h.payload_len)));
                }
                break;
            };
            let frame = rest.get(..n).unwrap_or_default();
            off += n;
            if let Err(e) = self.on_frame(frame, ctx) {
                res = Err(e);
                break;
            }
        }
        let mut buf = buf;
        buf.drain(..off.min(buf.len()));
        // Anything queued for the socket while `rbuf` was out stays in wbuf.
        self.rbuf = buf;
        res
    }

    fn on_frame(&mut self, frame: &[u8], ctx: &mut Ctx) -> Result<(), Fail> {
        let h = Header::parse(frame).ok_or_else(|| proto("short frame"))?;
        if h.msg_type == MsgType::EchoReply {
            let p = self
                .pending
                .pop_front()
                .ok_or_else(|| proto("ECHO_REPLY without a request"))?;
            let Req::Echo(kind) = p.req else {
                return Err(proto(format!(
                    "ECHO_REPLY where {:?} was expected",
                    p.req.reply_type()
                )));
            };
            // The reply is the request with only the type changed.
            let mut want = Msg::new(MsgType::EchoReply);
            want.seq = Some(p.seq);
            let mut buf = [0u8; 16];
            let n = want.emit(&mut buf).map_err(|e| proto(format!("{e}")))?;
            if buf.get(..n) != Some(frame) {
                return Err(proto(format!(
                    "ECHO_REPLY {frame:02x?} is not the request with seq {}",
                    p.seq
                )));
            }
            return self.on_echo(kind, p, ctx);
        }
        let msg = Msg::parse(frame)
            .map_err(|e| proto(format!("undecodable {:?}: {}", h.msg_type, e.error)))?;
        match msg.msg_type {
            MsgType::VoteInfo => return self.on_vote_info(&msg, ctx),
            MsgType::ServerError => {
                return Err(proto(format!(
                    "SERVER_ERROR {} (seq {:?})",
                    msg.reply_error_code
                        .map_or("without code", ReplyErrorCode::as_str),
                    msg.seq
                )));
            }
            _ => {}
        }
        let p = self
            .pending
            .pop_front()
            .ok_or_else(|| proto(format!("unexpected {:?}", msg.msg_type)))?;
        if msg.msg_type != p.req.reply_type() {
            return Err(proto(format!(
                "got {:?} where {:?} was expected",
                msg.msg_type,
                p.req.reply_type()
            )));
        }
        if msg.seq != Some(p.seq) {
            return Err(proto(format!(
                "{:?} with seq {:?}, expected {}",
                msg.msg_type, msg.seq, p.seq
            )));
        }
        match p.req {
            Req::Preinit => self.on_preinit_reply(&msg, ctx),
            Req::Init => self.on_init_reply(&msg, ctx),
            Req::SetOption => {
                if msg.keep_active_partition_tie_breaker != Some(true) {
                    return Err(proto("SET_OPTION_REPLY without KAP = 1"));
                }
                self.maybe_ready(ctx);
                Ok(())
            }
            Req::List(ty, ring) => {
                if msg.node_list_type != Some(ty) {
                    return Err(proto(format!(
                        "NODE_LIST_REPLY type {:?}, expected {ty:?}",
                        msg.node_list_type
                    )));
                }
                if msg.ring_id != Some(ring) {
                    return Err(proto(format!(
                        "NODE_LIST_REPLY ring {:?}, expected {ring}",
                        msg.ring_id
                    )));
                }
                let vote = msg
                    .vote
                    .ok_or_else(|| proto("NODE_LIST_REPLY without a vote"))?;
                if vote.is_ack_or_nack() {
                    self.decide(vote, ring, ctx);
                }
                self.maybe_ready(ctx);
                Ok(())
            }
            Req::Echo(_) => Err(proto("internal: echo reply took the slow path")),
        }
    }

    fn on_preinit_reply(&mut self, msg: &Msg<'_>, ctx: &mut Ctx) -> Result<(), Fail> {
        let tls = msg
            .tls_supported
            .ok_or_else(|| proto("PREINIT_REPLY without TLS_SUPPORTED"))?;
        if msg.tls_client_cert_required.is_none() {
            return Err(proto("PREINIT_REPLY without TLS_CLIENT_CERT_REQUIRED"));
        }
        if let Some((configs, name)) = &ctx.tls {
            if tls == TlsSupported::Unsupported {
                return Err(proto("the server does not support TLS"));
            }
            let config = configs
                .get(self.cluster as usize)
                .ok_or_else(|| proto("internal: no TLS config"))?
                .clone();
            let mut m = Msg::new(MsgType::StartTls);
            m.seq = Some(self.next_seq());
            self.queue(&m)?;
            let hs = config
                .connect(name.clone())
                .start_handshake(&mut self.wbuf)
                .map_err(tls_fail)?;
            self.transport = Transport::Handshake {
                hs: Some(Box::new(ClientHandshake::NeedsInput(hs))),
                input: VecInput::default(),
            };
            self.set_st(St::Tls, ctx);
            Ok(())
        } else {
            if tls == TlsSupported::Required {
                return Err(proto("the server requires TLS (use --tls)"));
            }
            self.set_st(St::Init, ctx);
            self.send_init(ctx)
        }
    }

    fn on_init_reply(&mut self, msg: &Msg<'_>, ctx: &mut Ctx) -> Result<(), Fail> {
        match msg.reply_error_code {
            Some(ReplyErrorCode::NoError) => {}
            Some(code) => return Err(proto(format!("INIT_REPLY error {}", code.as_str()))),
            None => return Err(proto("INIT_REPLY without REPLY_ERROR_CODE")),
        }
        let has = |a: Option<U16Array<'_>>, v: u16| a.is_some_and(|a| a.iter().any(|x| x == v));
        if !has(msg.supported_options, 23) || !has(msg.supported_options, 22) {
            return Err(proto(
                "INIT_REPLY without options 22/23 in SUPPORTED_OPTIONS",
            ));
        }
        if msg.supported_messages.is_none() {
            return Err(proto("INIT_REPLY without SUPPORTED_MESSAGES"));
        }
        let sizes_ok = msg
            .server_maximum_request_size
            .is_some_and(|s| s >= MIN_REQUEST_SIZE)
            && msg.server_maximum_reply_size.is_some();
        if !sizes_ok {
            return Err(proto("INIT_REPLY with missing or too small size limits"));
        }
        if !has(msg.supported_decision_algorithms, 1) {
            return Err(proto(
                "INIT_REPLY without ffsplit in SUPPORTED_DECISION_ALGORITHMS",
            ));
        }
        self.echo_seq = 0;
        self.set_st(St::Lists, ctx);
        let mut m = Msg::new(MsgType::SetOption);
        m.seq = Some(self.next_seq());
        m.keep_active_partition_tie_breaker = Some(true);
        self.request(&m, Req::SetOption)?;
        self.node_list(NodeListType::InitialConfig)?;
        self.node_list(NodeListType::Membership)?;
        self.node_list(NodeListType::Quorum)?;
        if let Some(hb) = ctx.heartbeat {
            // Real clients' timers are independent: spread the first beat
            // over one interval instead of beating in lock step.
            let ms = u64::try_from(hb.as_millis()).unwrap_or(u64::MAX);
            let first = Instant::now() + Duration::from_millis(ctx.rand_below(ms) + 1);
            ctx.hb_heap
                .push(Reverse((first, self.idx, self.generation)));
        }
        Ok(())
    }

    fn maybe_ready(&mut self, ctx: &mut Ctx) {
        if self.st == St::Lists && self.pending.iter().all(|p| matches!(p.req, Req::Echo(_))) {
            self.set_st(St::Ready, ctx);
        }
    }

    fn decide(&mut self, vote: Vote, ring: RingId, ctx: &mut Ctx) {
        let d = Decision { vote, ring };
        self.decision = Some(d);
        let now = Instant::now();
        if self.expect == Some(d) && !self.met {
            self.met = true;
            self.decision_at = Some(now);
            ctx.stats.storm_left -= 1;
            ctx.stats.last_decision = Some(now);
        }
    }

    fn on_vote_info(&mut self, msg: &Msg<'_>, ctx: &mut Ctx) -> Result<(), Fail> {
        if !matches!(self.st, St::Lists | St::Ready) {
            return Err(proto("VOTE_INFO before INIT"));
        }
        let seq = msg.seq.ok_or_else(|| proto("VOTE_INFO without seq"))?;
        let vote = msg.vote.ok_or_else(|| proto("VOTE_INFO without vote"))?;
        let ring = msg
            .ring_id
            .ok_or_else(|| proto("VOTE_INFO without ring id"))?;
        if !vote.is_ack_or_nack() {
            return Err(proto(format!("VOTE_INFO with vote {}", vote.as_str())));
        }
        ctx.stats.vote_infos += 1;
        self.decide(vote, ring, ctx);
        let mut m = Msg::new(MsgType::VoteInfoReply);
        m.seq = Some(seq);
        self.queue(&m)
    }

    fn on_echo(&mut self, kind: Echo, p: Pending, ctx: &mut Ctx) -> Result<(), Fail> {
        match kind {
            Echo::Heartbeat => {
                self.hb_pending = false;
                ctx.stats.heartbeats += 1;
            }
            Echo::Load => {
                ctx.stats.load_replies += 1;
                ctx.stats.load_out -= 1;
                if ctx.mode == Mode::Closed {
                    self.send_echo(Echo::Load, ctx)?;
                }
            }
            Echo::Latency => {
                let us = Instant::now().saturating_duration_since(p.sent).as_micros();
                let _ = ctx
                    .hist
                    .record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                ctx.stats.latency_replies += 1;
            }
            Echo::Round => {
                ctx.stats.rounds_done += 1;
                if ctx.stats.rounds_done < ctx.round_target && !ctx.round_list.is_empty() {
                    let next = ctx.stats.rounds_done % ctx.round_list.len();
                    ctx.baton = ctx.round_list.get(next).copied();
                }
            }
        }
        Ok(())
    }
}
