//! The sans-IO protocol engine: [`Instance`] (cf. `qdevices/qnetd-instance.c`).
//!
//! The instance owns every client's protocol state, the cluster table and
//! the timers, and nothing else: no socket, no TLS, no clock. The shell
//! pushes bytes and time in, and pulls bytes, events and deadlines out:
//!
//! ```text
//!   accept(now, addr) -> ClientId
//!   handle_input(now, id, bytes) -> Input        (stops after STARTTLS)
//!   tls_established(id, peer names)
//!   disconnect(now, id)                          (EOF, error, or after Event::Close)
//!   handle_timeout(now)
//!        |
//!   poll_event() -> Event::Close
//!   poll_transmit() -> ClientId with new output
//!   outgoing(id) -> &[u8];  consume_outgoing(id, n)
//!   poll_timeout() -> next deadline
//! ```
//!
//! Replies are byte-identical to the reference's. After warm-up (buffers
//! grown to their working size) the heartbeat and node-list paths do not
//! allocate; `tests/no_alloc.rs` proves it.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )
)]

mod client;
mod cluster;
pub mod time;
pub mod timers;

use core::net::SocketAddr;
use std::collections::VecDeque;

pub use client::PeerAddr;
pub use time::Timestamp;

use self::client::{Client, Skip};
use self::cluster::ClusterTable;
use self::timers::{TimerKind, Timers};
use crate::algo::{self, Action, ClientId, Cluster, Member, store_list};
use crate::certname::{PeerNames, cluster_name_matches};
use crate::config::Config;
use crate::limits;
use crate::proto::{
    DecisionAlgorithm, HEADER_LEN, Header, Heuristics, Msg, MsgType, NodeInfo, NodeList,
    NodeListType, ReplyErrorCode, SUPPORTED_DECISION_ALGORITHMS, SUPPORTED_MESSAGES,
    SUPPORTED_OPTIONS, TlsSupported, U16Array, Vote, types::u16_array_bytes,
};

const SUPPORTED_MESSAGES_BYTES: [u8; 36] = u16_array_bytes(SUPPORTED_MESSAGES);
const SUPPORTED_OPTIONS_BYTES: [u8; 48] = u16_array_bytes(SUPPORTED_OPTIONS);
const SUPPORTED_ALGORITHMS_BYTES: [u8; 8] = u16_array_bytes(SUPPORTED_DECISION_ALGORITHMS);

/// The settings the protocol engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    /// TLS mode advertised and enforced.
    pub tls: TlsSupported,
    /// Whether TLS clients must present a certificate matching their cluster.
    pub client_cert_required: bool,
    /// Maximum number of connections, 0 = unlimited.
    pub max_clients: usize,
    /// Messages queued per client before it is disconnected.
    pub max_client_send_buffers: usize,
    /// Largest message sent, header included.
    pub max_client_send_size: usize,
    /// Largest message accepted, header included.
    pub max_client_receive_size: usize,
    /// Smallest heartbeat a client may use, in ms.
    pub heartbeat_interval_min: u32,
    /// Largest heartbeat a client may use, in ms.
    pub heartbeat_interval_max: u32,
    /// Whether silent clients are dropped.
    pub dpd_enabled: bool,
    /// DPD timeout as a multiple of the heartbeat.
    pub dpd_interval_coefficient: f64,
    /// Server default of the ffsplit keep-active-partition tie-breaker.
    pub keep_active_partition_tie_breaker: bool,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self::from(&Config::default())
    }
}

impl From<&Config> for InstanceConfig {
    fn from(c: &Config) -> Self {
        let a = &c.advanced;
        Self {
            tls: c.tls,
            client_cert_required: c.client_cert_required,
            max_clients: c.max_clients,
            max_client_send_buffers: a.max_client_send_buffers,
            max_client_send_size: a.max_client_send_size,
            max_client_receive_size: a.max_client_receive_size,
            heartbeat_interval_min: a.heartbeat_interval_min,
            heartbeat_interval_max: a.heartbeat_interval_max,
            dpd_enabled: a.dpd_enabled,
            dpd_interval_coefficient: a.dpd_interval_coefficient,
            keep_active_partition_tie_breaker: a.keep_active_partition_tie_breaker,
        }
    }
}

/// Something the shell must act on (besides STARTTLS, which
/// [`Instance::handle_input`] reports in its [`Input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Close the client's socket without sending anything more, then call
    /// [`Instance::disconnect`].
    Close(ClientId),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// `-m max_clients` reached.
    MaxClients,
    /// The pre-INIT dead-peer timer is out of the timer range
    /// (`dpd_interval_coefficient` × 120 s above 5 h): the reference closes
    /// every connection at once.
    DpdTimer,
}

/// What [`Instance::handle_input`] did with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// Bytes consumed; all of them unless `start_tls`.
    pub consumed: usize,
    /// An accepted STARTTLS ended the plain-text part: wrap the socket in
    /// TLS now and give it the bytes after `consumed`.
    pub start_tls: bool,
}

impl Input {
    const fn all(n: usize) -> Self {
        Self {
            consumed: n,
            start_tls: false,
        }
    }

    const fn tls(n: usize) -> Self {
        Self {
            consumed: n,
            start_tls: true,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    client: Option<Client>,
}

/// Outcome of the TLS check that starts most handlers
/// (`qnetd_client_msg_received_check_tls`).
enum TlsCheck {
    Ok,
    /// The message was answered with SERVER_ERROR(TLS_REQUIRED) and dropped.
    Dropped,
    /// The client was closed.
    Closed,
}

/// The protocol engine for all clients and clusters.
#[derive(Debug)]
pub struct Instance {
    cfg: InstanceConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    clients: usize,
    clusters: ClusterTable,
    timers: Timers,
    events: VecDeque<Event>,
    dirty: VecDeque<ClientId>,
    actions: Vec<Action>,
    /// Where received node lists are decoded (fixed capacity, on the heap
    /// once). `None` only while a node list is being handled.
    node_scratch: Option<Box<NodeList>>,
}

/// Builds a SERVER_ERROR.
fn server_error(seq: Option<u32>, code: ReplyErrorCode) -> Msg<'static> {
    let mut m = Msg::new(MsgType::ServerError);
    m.seq = seq;
    m.reply_error_code = Some(code);
    m
}

impl Instance {
    /// An instance with no clients.
    #[must_use]
    pub fn new(cfg: InstanceConfig) -> Self {
        Self {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            clients: 0,
            clusters: ClusterTable::default(),
            timers: Timers::default(),
            events: VecDeque::new(),
            dirty: VecDeque::new(),
            actions: Vec::new(),
            node_scratch: Some(Box::new(NodeList::new())),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    // ----------------------------------------------------------- clients

    fn client(&self, id: ClientId) -> Option<&Client> {
        let slot = self.slots.get(usize::try_from(id.index()).ok()?)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.client.as_ref()
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        let slot = self.slots.get_mut(usize::try_from(id.index()).ok()?)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.client.as_mut()
    }

    /// DPD interval for a heartbeat, or `None` if the timer facility would
    /// refuse it (`timer_list_entry_set_interval`: 1 ms .. 5 h).
    fn dpd_interval(&self, heartbeat: u32) -> Option<u64> {
        let ms = self.cfg.dpd_interval_coefficient * f64::from(heartbeat);
        // Truncation toward zero as the C cast does; the range check makes
        // the conversion exact.
        let ms = ms.trunc();
        if !(1.0..=limits::TIMER_MAX_INTERVAL_MS as f64).contains(&ms) {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "range-checked above"
        )]
        Some(ms as u64)
    }

    /// Registers a new TCP connection.
    ///
    /// # Errors
    /// [`AcceptError::MaxClients`] when `-m` is reached; the shell then
    /// closes the socket without sending anything (the reference logs
    /// `Maximum clients reached. Not accepting connection`).
    pub fn accept(&mut self, now: Timestamp, addr: SocketAddr) -> Result<ClientId, AcceptError> {
        if self.cfg.max_clients != 0 && self.clients >= self.cfg.max_clients {
            log::error!("Maximum clients reached. Not accepting connection");
            return Err(AcceptError::MaxClients);
        }
        let dpd = if self.cfg.dpd_enabled {
            let Some(interval) = self.dpd_interval(limits::PRE_INIT_HEARTBEAT_INTERVAL) else {
                log::error!("Can't initialize dpd timer for client {}", PeerAddr(addr));
                return Err(AcceptError::DpdTimer);
            };
            Some(interval)
        } else {
            None
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let Some(slot) = self
            .slots
            .get_mut(usize::try_from(index).unwrap_or(usize::MAX))
        else {
            return Err(AcceptError::MaxClients);
        };
        slot.generation = slot.generation.wrapping_add(1);
        let id = ClientId::new(index, slot.generation);
        let mut client = Client::new(id, addr, limits::PRE_INIT_HEARTBEAT_INTERVAL);
        self.timers.reserve(2);
        self.dirty.reserve(1);
        if let Some(interval) = dpd {
            client.dpd_interval = interval;
            self.timers.set(
                id,
                TimerKind::Dpd,
                &mut client.dpd,
                Some(now.add_millis(interval)),
            );
        }
        slot.client = Some(client);
        self.clients += 1;
        log::debug!("Client {} connected", PeerAddr(addr));
        Ok(id)
    }

    /// Number of connections (initialised or not).
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.clients
    }

    /// Number of clusters.
    #[must_use]
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// Clusters in creation order (cold path, allocates).
    #[must_use]
    pub fn clusters(&self) -> Vec<&Cluster> {
        self.clusters.in_creation_order()
    }

    /// Facts about one connection, for reports.
    #[must_use]
    pub fn client_info(&self, id: ClientId) -> Option<ClientInfo> {
        let c = self.client(id)?;
        Some(ClientInfo {
            addr: c.addr,
            heartbeat_interval: c.heartbeat_interval,
            tls_started: c.tls_started,
            tls_peer_verified: c.tls_peer_verified,
            init_received: c.init_received,
        })
    }

    // -------------------------------------------------------------- input

    /// Feeds bytes received from a client.
    ///
    /// Complete messages are processed at once; a partial message is kept
    /// until the rest arrives. Processing stops right after an accepted
    /// STARTTLS: the returned count then excludes the bytes after it, which
    /// belong to the TLS handshake ([`Input::start_tls`] is set).
    pub fn handle_input(&mut self, now: Timestamp, id: ClientId, mut data: &[u8]) -> Input {
        let total = data.len();
        let max_receive = self.cfg.max_client_receive_size;
        loop {
            let Some(client) = self.client_mut(id) else {
                return Input::all(total);
            };
            if client.closing {
                return Input::all(total);
            }
            if data.is_empty() {
                return Input::all(total);
            }
            if let Some(skip) = client.skip.as_mut() {
                let take = usize::try_from(skip.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                skip.remaining -= take as u64;
                data = data.get(take..).unwrap_or_default();
                if skip.remaining == 0 {
                    let reason = skip.reason;
                    client.skip = None;
                    self.send(id, &server_error(None, reason));
                }
                continue;
            }
            if client.rx.is_empty() {
                // Fast path: a whole message straight from the input.
                match Header::parse(data) {
                    None => {
                        client.rx.extend_from_slice(data);
                        return Input::all(total);
                    }
                    Some(header) => {
                        if let Some(skip) = check_header(header, max_receive) {
                            let Some(client) = self.client_mut(id) else {
                                return Input::all(total);
                            };
                            data = data.get(HEADER_LEN..).unwrap_or_default();
                            if skip.remaining == 0 {
                                self.send(id, &server_error(None, skip.reason));
                            } else {
                                client.skip = Some(skip);
                            }
                            continue;
                        }
                        let len = header.total_len().unwrap_or(usize::MAX);
                        if let Some((frame, rest)) = data.split_at_checked(len) {
                            let start_tls = self.process(now, id, frame);
                            data = rest;
                            if start_tls {
                                return Input::tls(total - data.len());
                            }
                        } else {
                            client.rx.extend_from_slice(data);
                            return Input::all(total);
                        }
                    }
                }
            } else {
                // Complete the buffered header, then the body.
                if client.rx.len() < HEADER_LEN {
                    let take = (HEADER_LEN - client.rx.len()).min(data.len());
                    let (head, rest) = data.split_at(take);
                    client.rx.extend_from_slice(head);
                    data = rest;
                    let Some(header) = Header::parse(&client.rx) else {
                        return Input::all(total);
                    };
                    if let Some(skip) = check_header(header, max_receive) {
                        let Some(client) = self.client_mut(id) else {
                            return Input::all(total);
                        };
                        client.rx.clear();
                        if skip.remaining == 0 {
                            self.send(id, &server_error(None, skip.reason));
                        } else {
                            client.skip = Some(skip);
                        }
                        continue;
                    }
                }
                let Some(client) = self.client_mut(id) else {
                    return Input::all(total);
                };
                let len = Header::parse(&client.rx)
                    .and_then(|h| h.total_len())
                    .unwrap_or(HEADER_LEN);
                let take = len.saturating_sub(client.rx.len()).min(data.len());
                let (body, rest) = data.split_at(take);
                client.rx.extend_from_slice(body);
                data = rest;
                if client.rx.len() == len {
                    let frame = core::mem::take(&mut client.rx);
                    let start_tls = self.process(now, id, &frame);
                    if let Some(client) = self.client_mut(id) {
                        // Keep the buffer's capacity for the next message.
                        let mut frame = frame;
                        frame.clear();
                        client.rx = frame;
                    }
                    if start_tls {
                        return Input::tls(total - data.len());
                    }
                }
            }
        }
    }

    /// Processes one complete message. Returns whether TLS must start now.
    fn process(&mut self, now: Timestamp, id: ClientId, frame: &[u8]) -> bool {
        // Every complete, non-skipped message restarts the DPD timer, even
        // one that gets an error reply.
        if let Some(client) = self.client_mut_split(id) {
            let (client, timers) = client;
            if client.dpd.is_armed() {
                let deadline = now.add_millis(client.dpd_interval);
                timers.set(id, TimerKind::Dpd, &mut client.dpd, Some(deadline));
            }
        }
        let msg = match Msg::parse(frame) {
            Ok(msg) => msg,
            Err(fail) => {
                log::warn!("{}", fail.error.reference_text());
                log::info!("Sending back error message");
                self.send(id, &server_error(fail.seq, fail.error.reply_code()));
                return false;
            }
        };
        match msg.msg_type {
            MsgType::Preinit => self.on_preinit(id, &msg),
            MsgType::StartTls => return self.on_starttls(id, &msg),
            MsgType::Init => self.on_init(now, id, &msg),
            MsgType::SetOption => self.on_set_option(now, id, &msg),
            MsgType::EchoRequest => self.on_echo_request(id, &msg, frame),
            MsgType::NodeList => self.on_node_list(now, id, &msg),
            MsgType::AskForVote => self.on_ask_for_vote(now, id, &msg),
            MsgType::VoteInfoReply => self.on_vote_info_reply(now, id, &msg),
            MsgType::HeuristicsChange => self.on_heuristics_change(now, id, &msg),
            MsgType::PreinitReply
            | MsgType::InitReply
            | MsgType::ServerError
            | MsgType::SetOptionReply
            | MsgType::EchoReply
            | MsgType::NodeListReply
            | MsgType::AskForVoteReply
            | MsgType::VoteInfo
            | MsgType::HeuristicsChangeReply => {
                log::error!(
                    "Received {} message. Sending back error message",
                    msg.msg_type.as_str().to_ascii_lowercase()
                );
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::UnexpectedMessage),
                );
            }
            MsgType::Unknown(t) => {
                // Unreachable: unknown types are skipped at the header.
                log::error!(
                    "Unsupported message {t} received from client. Sending back error message"
                );
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::UnsupportedMessage),
                );
            }
        }
        false
    }

    fn client_mut_split(&mut self, id: ClientId) -> Option<(&mut Client, &mut Timers)> {
        let slot = self.slots.get_mut(usize::try_from(id.index()).ok()?)?;
        if slot.generation != id.generation() {
            return None;
        }
        Some((slot.client.as_mut()?, &mut self.timers))
    }

    // ------------------------------------------------------------ output

    /// Queues a message for a client. On overflow (send buffers or size),
    /// the client is closed, as the reference does ("Can't alloc ... msg").
    fn send(&mut self, id: ClientId, msg: &Msg<'_>) -> bool {
        let len = msg.buffer_len();
        self.enqueue(id, len, |buf| msg.emit(buf).is_ok())
    }

    fn enqueue(&mut self, id: ClientId, len: usize, write: impl FnOnce(&mut [u8]) -> bool) -> bool {
        let max_size = self.cfg.max_client_send_size;
        let max_msgs = self.cfg.max_client_send_buffers;
        let Some(client) = self.client_mut(id) else {
            return false;
        };
        if client.closing {
            return false;
        }
        if len > max_size || client.tx.messages() >= max_msgs || !client.tx.push_with(len, write) {
            log::error!(
                "Can't alloc msg for client {} (queue full or message too large). Disconnecting client connection.",
                client.addr
            );
            self.close(id);
            return false;
        }
        if !client.dirty {
            client.dirty = true;
            self.dirty.push_back(id);
        }
        true
    }

    /// Marks a client for closing: the shell closes the socket and calls
    /// [`Instance::disconnect`].
    fn close(&mut self, id: ClientId) {
        if let Some(client) = self.client_mut(id)
            && !client.closing
        {
            client.closing = true;
            self.events.push_back(Event::Close(id));
        }
    }

    /// Bytes waiting to be written to the client.
    #[must_use]
    pub fn outgoing(&self, id: ClientId) -> &[u8] {
        self.client(id).map_or(&[], |c| c.tx.pending())
    }

    /// Marks `n` bytes of [`Instance::outgoing`] as written.
    pub fn consume_outgoing(&mut self, id: ClientId, n: usize) {
        if let Some(c) = self.client_mut(id) {
            c.tx.consume(n);
        }
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next client with output queued since the last call.
    pub fn poll_transmit(&mut self) -> Option<ClientId> {
        while let Some(id) = self.dirty.pop_front() {
            if let Some(c) = self.client_mut(id) {
                c.dirty = false;
                return Some(id);
            }
        }
        None
    }

    // ------------------------------------------------------------ timers

    /// When [`Instance::handle_timeout`] should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// Fires every timer due at `now`: DPD expiries close clients, the
    /// algorithm timer may send VOTE_INFOs.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(entry) = self.timers.pop_due(now) {
            let (_, id, kind) = entry;
            let fired = match self.client_mut_split(id) {
                Some((client, timers)) => {
                    let slot = match kind {
                        TimerKind::Dpd => &mut client.dpd,
                        TimerKind::Algo => &mut client.algo_timer,
                    };
                    timers.resolve(entry, now, slot)
                }
                None => false,
            };
            if !fired {
                continue;
            }
            match kind {
                TimerKind::Dpd => self.on_dpd_expired(id),
                TimerKind::Algo => self.on_algo_timer(now, id),
            }
        }
    }

    fn on_dpd_expired(&mut self, id: ClientId) {
        if let Some(c) = self.client(id) {
            log::warn!(
                "Client {} doesn't sent any message during {}ms. Disconnecting",
                c.addr,
                c.dpd_interval
            );
        }
        self.close(id);
    }

    /// The algorithm timer fired (`qnetd_client_algo_timer_callback`).
    fn on_algo_timer(&mut self, now: Timestamp, id: ClientId) {
        let Some((cluster_slot, member_idx)) = self.member_of(id) else {
            return;
        };
        let vote = self.run_algorithm(now, cluster_slot, member_idx, algo::Event::Timer);
        match vote {
            Err(code) => {
                log::error!("Algorithm returned error code. Sending error reply.");
                self.send(id, &server_error(None, code));
            }
            Ok(vote) if vote.is_ack_or_nack() => {
                let Some(m) = self
                    .clusters
                    .get_mut(cluster_slot)
                    .and_then(|c| c.members.get_mut(member_idx))
                else {
                    return;
                };
                m.timer_vote_info_seq = m.timer_vote_info_seq.wrapping_add(1);
                let (seq, ring_id, node_id) = (m.timer_vote_info_seq, m.ring_id, m.node_id);
                self.send_vote_info(cluster_slot, node_id, seq, vote, ring_id);
            }
            Ok(_) => {}
        }
    }

    // --------------------------------------------------------- algorithm

    /// The cluster slot and member index of an initialised client.
    fn member_of(&self, id: ClientId) -> Option<(usize, usize)> {
        let client = self.client(id)?;
        let slot = client.cluster?;
        let idx = self.clusters.get(slot)?.position(client.node_id)?;
        Some((slot, idx))
    }

    /// Runs an algorithm callback and carries out its actions.
    fn run_algorithm(
        &mut self,
        now: Timestamp,
        cluster_slot: usize,
        member_idx: usize,
        event: algo::Event<'_>,
    ) -> Result<Vote, ReplyErrorCode> {
        let mut actions = core::mem::take(&mut self.actions);
        actions.clear();
        let result = match self.clusters.get_mut(cluster_slot) {
            Some(cluster) => algo::handle(cluster, member_idx, event, &mut actions),
            None => Err(ReplyErrorCode::InternalError),
        };
        for action in &actions {
            self.apply(now, cluster_slot, *action);
        }
        self.actions = actions;
        result
    }

    fn apply(&mut self, now: Timestamp, cluster_slot: usize, action: Action) {
        match action {
            Action::VoteInfo {
                node_id,
                seq,
                vote,
                ring_id,
            } => self.send_vote_info(cluster_slot, node_id, seq, vote, ring_id),
            Action::StartTimer { node_id } | Action::StopTimer { node_id } => {
                let Some(client_id) = self
                    .clusters
                    .get(cluster_slot)
                    .and_then(|c| c.position(node_id).and_then(|i| c.members.get(i)))
                    .map(|m| m.client)
                else {
                    return;
                };
                let Some((client, timers)) = self.client_mut_split(client_id) else {
                    return;
                };
                let deadline = matches!(action, Action::StartTimer { .. })
                    .then(|| now.add_millis(u64::from((client.heartbeat_interval / 4).max(1))));
                timers.set(client_id, TimerKind::Algo, &mut client.algo_timer, deadline);
            }
        }
    }

    /// Queues a VOTE_INFO and records it as the member's last vote
    /// (`qnetd_client_send_vote_info`).
    fn send_vote_info(
        &mut self,
        cluster_slot: usize,
        node_id: u32,
        seq: u32,
        vote: Vote,
        ring_id: crate::proto::RingId,
    ) {
        let Some(cluster) = self.clusters.get_mut(cluster_slot) else {
            return;
        };
        let Some(member) = cluster
            .position(node_id)
            .and_then(|i| cluster.members.get_mut(i))
        else {
            return;
        };
        let changed = member.record_vote(vote);
        let client_id = member.client;
        if changed {
            log::info!(
                "vote changed cluster={} node_id={node_id} vote={vote}",
                algo::model::NameDisplay(&cluster.name)
            );
        }
        log::debug!(
            "Sending vote info to node_id {node_id}: seq={seq} vote={vote} ring_id={ring_id}"
        );
        let mut m = Msg::new(MsgType::VoteInfo);
        m.seq = Some(seq);
        m.vote = Some(vote);
        m.ring_id = Some(ring_id);
        self.send(client_id, &m);
    }

    /// Records the vote of a reply on the member; logs ACK/NACK changes.
    fn record_reply_vote(&mut self, cluster_slot: usize, member_idx: usize, vote: Vote) {
        let Some(cluster) = self.clusters.get_mut(cluster_slot) else {
            return;
        };
        let Some(member) = cluster.members.get_mut(member_idx) else {
            return;
        };
        if member.record_vote(vote) {
            log::info!(
                "vote changed cluster={} node_id={} vote={vote}",
                algo::model::NameDisplay(&cluster.name),
                member.node_id
            );
        }
    }

    // ---------------------------------------------------------- handlers

    /// The TLS check at the start of most handlers.
    fn check_tls(&mut self, id: ClientId, msg: &Msg<'_>) -> TlsCheck {
        let (tls, cert_required) = (self.cfg.tls, self.cfg.client_cert_required);
        let Some(client) = self.client_mut(id) else {
            return TlsCheck::Closed;
        };
        let check_certificate = match tls {
            TlsSupported::Supported => {
                client.tls_started && cert_required && !client.tls_peer_verified
            }
            TlsSupported::Required => {
                if !client.tls_started {
                    log::error!(
                        "TLS is required but doesn't started yet. Sending back error message"
                    );
                    self.send(id, &server_error(msg.seq, ReplyErrorCode::TlsRequired));
                    return TlsCheck::Dropped;
                }
                cert_required && !client.tls_peer_verified
            }
            TlsSupported::Unsupported | TlsSupported::Unknown(_) => false,
        };
        if check_certificate {
            match client.peer_names.as_deref() {
                None => {
                    log::error!("Client doesn't sent valid certificate. Disconnecting client");
                    self.close(id);
                    return TlsCheck::Closed;
                }
                Some(names) if !cluster_name_matches(&client.cluster_name, names) => {
                    log::error!(
                        "Client doesn't sent certificate with valid CN. Disconnecting client"
                    );
                    self.close(id);
                    return TlsCheck::Closed;
                }
                Some(_) => client.tls_peer_verified = true,
            }
        }
        TlsCheck::Ok
    }

    /// TLS check, then "init required" (the common preamble).
    fn check_initialised(&mut self, id: ClientId, msg: &Msg<'_>, what: &str) -> bool {
        if !matches!(self.check_tls(id, msg), TlsCheck::Ok) {
            return false;
        }
        if self.client(id).is_some_and(|c| c.init_received) {
            return true;
        }
        log::error!("Received {what} message before init message. Sending error reply.");
        self.send(id, &server_error(msg.seq, ReplyErrorCode::InitRequired));
        false
    }

    fn on_preinit(&mut self, id: ClientId, msg: &Msg<'_>) {
        let (tls, cert_required) = (self.cfg.tls, self.cfg.client_cert_required);
        let Some(client) = self.client_mut(id) else {
            return;
        };
        let Some(name) = msg.cluster_name else {
            log::error!("Received preinit message without cluster name. Sending error reply.");
            self.send(
                id,
                &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        if client.preinit_received {
            self.refuse_second_preinit(id);
            return;
        }
        client.cluster_name.clear();
        client.cluster_name.extend_from_slice(name);
        client.preinit_received = true;
        log::debug!(
            "Client {} sent preinit, cluster {}",
            client.addr,
            client.name()
        );
        let mut reply = Msg::new(MsgType::PreinitReply);
        reply.seq = msg.seq;
        reply.tls_supported = Some(tls);
        reply.tls_client_cert_required = Some(u8::from(cert_required));
        self.send(id, &reply);
    }

    /// Intended difference from the reference, which overwrites the stored
    /// name: the cluster name is bound to the connection by its first
    /// PREINIT, so a certificate checked against one cluster can never
    /// admit the connection to another. A real qdevice reconnects instead
    /// of sending PREINIT twice; the connection is closed as the reference
    /// closes one that sends STARTTLS twice.
    fn refuse_second_preinit(&mut self, id: ClientId) {
        log::error!("Received second preinit message. Disconnecting client.");
        self.close(id);
    }

    /// Intended difference from the reference, which checks the
    /// certificate only until it was once found valid: at INIT, with client
    /// certificates required, the certificate must name the cluster of this
    /// connection, whatever happened before. Returns false (and closes)
    /// if it does not.
    fn certificate_names_cluster(&mut self, id: ClientId) -> bool {
        let must_check = self.cfg.client_cert_required
            && matches!(
                self.cfg.tls,
                TlsSupported::Supported | TlsSupported::Required
            );
        let Some(client) = self.client(id) else {
            return false;
        };
        if !must_check || !client.tls_started {
            return true;
        }
        if client
            .peer_names
            .as_deref()
            .is_some_and(|names| cluster_name_matches(&client.cluster_name, names))
        {
            return true;
        }
        log::error!("Client doesn't sent certificate with valid CN. Disconnecting client");
        self.close(id);
        false
    }

    fn on_starttls(&mut self, id: ClientId, msg: &Msg<'_>) -> bool {
        let tls = self.cfg.tls;
        let Some(client) = self.client_mut(id) else {
            return false;
        };
        if !client.preinit_received {
            log::error!("Received starttls before preinit message. Sending error reply.");
            self.send(id, &server_error(msg.seq, ReplyErrorCode::PreinitRequired));
            return false;
        }
        if client.tls_started || matches!(tls, TlsSupported::Unsupported | TlsSupported::Unknown(_))
        {
            log::error!("Can't start TLS. Disconnecting client.");
            self.close(id);
            return false;
        }
        client.tls_started = true;
        client.tls_peer_verified = false;
        true
    }

    /// Records the client certificate after the TLS handshake (names used
    /// to check the cluster name on the next message).
    pub fn tls_established(&mut self, id: ClientId, peer: Option<PeerNames>) {
        if let Some(client) = self.client_mut(id) {
            client.peer_names = peer.map(Box::new);
        }
    }

    /// The INIT procedure (`qnetd_client_msg_received_init`), with its
    /// error precedence.
    fn on_init(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !matches!(self.check_tls(id, msg), TlsCheck::Ok) || !self.certificate_names_cluster(id) {
            return;
        }
        let (hb_min, hb_max) = (
            self.cfg.heartbeat_interval_min,
            self.cfg.heartbeat_interval_max,
        );
        let kap_default = self.cfg.keep_active_partition_tie_breaker;
        let Some(client) = self.client(id) else {
            return;
        };
        // A second INIT on an initialised connection must not change the
        // member it already is; it is answered as the reference does
        // (DUPLICATE_NODE_ID, or the per-field error).
        let again = client.init_received;
        let mut e = ReplyErrorCode::NoError;
        if !client.preinit_received {
            log::error!("Received init before preinit message. Sending error reply.");
            e = ReplyErrorCode::PreinitRequired;
        }
        let ok = |e: ReplyErrorCode| e == ReplyErrorCode::NoError;

        let node_id = if ok(e) && msg.node_id.is_none() {
            log::error!("Received init message without node id set. Sending error reply.");
            e = ReplyErrorCode::DoesntContainRequiredOption;
            None
        } else {
            Some(msg.node_id.unwrap_or(0))
        };
        let ring_id = if ok(e) && msg.ring_id.is_none() {
            log::error!("Received init message without ring id set. Sending error reply.");
            e = ReplyErrorCode::DoesntContainRequiredOption;
            None
        } else {
            Some(msg.ring_id.unwrap_or_default())
        };
        if ok(e) && msg.heartbeat_interval.is_none() {
            log::error!(
                "Received init message without heartbeat interval set. Sending error reply."
            );
            e = ReplyErrorCode::DoesntContainRequiredOption;
        } else {
            let hb = msg.heartbeat_interval.unwrap_or(0);
            if hb < hb_min || hb > hb_max {
                log::error!(
                    "Client requested invalid heartbeat interval {hb}. Sending error reply."
                );
                e = ReplyErrorCode::InvalidHeartbeatInterval;
            } else if !self.set_heartbeat(now, id, hb) {
                e = ReplyErrorCode::InvalidHeartbeatInterval;
            }
        }
        let tie_breaker = if ok(e) && msg.tie_breaker.is_none() {
            log::error!("Received init message without tie-breaker set. Sending error reply.");
            e = ReplyErrorCode::DoesntContainRequiredOption;
            None
        } else {
            msg.tie_breaker
        };
        let algorithm = if ok(e) && msg.decision_algorithm.is_none() {
            log::error!("Received init message without decision algorithm. Sending error reply.");
            e = ReplyErrorCode::DoesntContainRequiredOption;
            None
        } else {
            let a = msg.decision_algorithm.unwrap_or(DecisionAlgorithm::Test);
            if !algo::is_supported(a) {
                log::error!(
                    "Client requested unsupported decision algorithm {}. Sending error reply.",
                    u16::from(a)
                );
                e = ReplyErrorCode::UnsupportedDecisionAlgorithm;
            }
            Some(a)
        };

        if !again && let Some(client) = self.client_mut(id) {
            if let Some(v) = node_id {
                client.node_id = v;
            }
            if let Some(v) = ring_id {
                client.ring_id = v;
            }
            if let Some(v) = tie_breaker {
                client.tie_breaker = v;
            }
            if let Some(v) = algorithm {
                client.algorithm = v;
            }
        }

        if ok(e) {
            e = self.check_new_client(id, node_id, tie_breaker, algorithm, again);
        }
        if ok(e) {
            self.join_cluster(id, kap_default);
        } else {
            log::error!("Algorithm returned error code. Sending error reply.");
        }

        let mut reply = Msg::new(MsgType::InitReply);
        reply.reply_error_code = Some(e);
        if msg.supported_messages.is_some() {
            reply.supported_messages = U16Array::from_be_bytes(&SUPPORTED_MESSAGES_BYTES);
        }
        if msg.supported_options.is_some() {
            reply.supported_options = U16Array::from_be_bytes(&SUPPORTED_OPTIONS_BYTES);
        }
        reply.seq = msg.seq;
        reply.server_maximum_request_size =
            Some(u32::try_from(self.cfg.max_client_receive_size).unwrap_or(u32::MAX));
        reply.server_maximum_reply_size =
            Some(u32::try_from(self.cfg.max_client_send_size).unwrap_or(u32::MAX));
        reply.supported_decision_algorithms = U16Array::from_be_bytes(&SUPPORTED_ALGORITHMS_BYTES);
        self.send(id, &reply);
    }

    /// Stores a heartbeat interval and re-arms DPD from now
    /// (`qnetd_client_dpd_timer_update_interval`). Returns false if the DPD
    /// interval would be out of the timer's range.
    fn set_heartbeat(&mut self, now: Timestamp, id: ClientId, hb: u32) -> bool {
        let interval = self.dpd_interval(hb);
        let Some((client, timers)) = self.client_mut_split(id) else {
            return false;
        };
        client.heartbeat_interval = hb;
        if !client.dpd.is_armed() {
            // DPD disabled (or already expired): nothing to update.
            return true;
        }
        let Some(interval) = interval else {
            return false;
        };
        client.dpd_interval = interval;
        timers.set(
            id,
            TimerKind::Dpd,
            &mut client.dpd,
            Some(now.add_millis(interval)),
        );
        true
    }

    /// Checks against the clients already in the cluster
    /// (`qnetd_client_msg_received_init_check_new_client`).
    fn check_new_client(
        &self,
        id: ClientId,
        node_id: Option<u32>,
        tie_breaker: Option<crate::proto::TieBreaker>,
        algorithm: Option<DecisionAlgorithm>,
        again: bool,
    ) -> ReplyErrorCode {
        let Some(client) = self.client(id) else {
            return ReplyErrorCode::InternalError;
        };
        let (Some(node_id), Some(tb), Some(alg)) = (node_id, tie_breaker, algorithm) else {
            return ReplyErrorCode::InternalError;
        };
        if let Some(cluster) = self
            .clusters
            .find(&client.cluster_name)
            .and_then(|s| self.clusters.get(s))
        {
            if !again && cluster.members.len() >= limits::MAX_NODES {
                // Intended difference: the reference has no limit.
                log::error!(
                    "Cluster already has the maximum of {} nodes. Sending error reply",
                    limits::MAX_NODES
                );
                return ReplyErrorCode::InternalError;
            }
            for m in &cluster.members {
                if !tb.same_as(&m.tie_breaker) {
                    log::error!(
                        "Received init message contains tie-breaker which differs from rest of cluster. Sending error reply"
                    );
                    return ReplyErrorCode::TieBreakerDiffersFromOtherNodes;
                }
                if alg != m.algorithm {
                    log::error!(
                        "Received init message contains algorithm which differs from rest of cluster. Sending error reply"
                    );
                    return ReplyErrorCode::AlgorithmDiffersFromOtherNodes;
                }
                if node_id == m.node_id {
                    log::error!(
                        "Received init message contains node id which is duplicate of other node in cluster. Sending error reply"
                    );
                    return ReplyErrorCode::DuplicateNodeId;
                }
            }
        }
        if again {
            // The reference would add this connection to a cluster a second
            // time; refuse as a duplicate instead.
            log::error!(
                "Received second init message on an initialised connection. Sending error reply"
            );
            return ReplyErrorCode::DuplicateNodeId;
        }
        ReplyErrorCode::NoError
    }

    /// Adds an INIT-ed client to its cluster (creating it) and marks it
    /// initialised.
    fn join_cluster(&mut self, id: ClientId, kap_default: bool) {
        let Some(client) = self.client(id) else {
            return;
        };
        let member = Member::new(
            id,
            client.node_id,
            client.algorithm,
            client.tie_breaker,
            client.ring_id,
            kap_default,
        );
        let name = client.cluster_name.clone();
        let slot = match self.clusters.find(&name) {
            Some(s) => s,
            None => self.clusters.create(&name),
        };
        if let Some(cluster) = self.clusters.get_mut(slot) {
            cluster.insert(member);
        }
        let Some(client) = self.client_mut(id) else {
            return;
        };
        client.cluster = Some(slot);
        client.init_received = true;
        if client.algorithm == DecisionAlgorithm::Test {
            log::warn!(
                "algo-test: Client {} (cluster = '{}', node_id = {}) initiated test algorithm. It's not recommended to use test algorithm because it can create multiple quorate partitions!",
                client.addr,
                client.name(),
                client.node_id
            );
        }
        log::info!(
            "client connected addr={} cluster={} node_id={} algorithm={} tie_breaker={} heartbeat={}ms tls={}",
            client.addr,
            client.name(),
            client.node_id,
            client.algorithm,
            client.tie_breaker,
            client.heartbeat_interval,
            if client.tls_started { "yes" } else { "no" }
        );
    }

    fn on_set_option(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !self.check_initialised(id, msg, "set option") {
            return;
        }
        if let Some(hb) = msg.heartbeat_interval {
            if hb < self.cfg.heartbeat_interval_min || hb > self.cfg.heartbeat_interval_max {
                log::error!(
                    "Client requested invalid heartbeat interval {hb}. Sending error reply."
                );
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::InvalidHeartbeatInterval),
                );
                return;
            }
            if !self.set_heartbeat(now, id, hb) {
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::InvalidHeartbeatInterval),
                );
                return;
            }
        }
        let mut kap_now = None;
        if let Some((slot, idx)) = self.member_of(id)
            && let Some(m) = self
                .clusters
                .get_mut(slot)
                .and_then(|c| c.members.get_mut(idx))
        {
            if let Some(kap) = msg.keep_active_partition_tie_breaker {
                m.keep_active_partition_tie_breaker = kap;
            }
            kap_now = Some(m.keep_active_partition_tie_breaker);
        }
        let hb_now = self.client(id).map_or(0, |c| c.heartbeat_interval);
        let mut reply = Msg::new(MsgType::SetOptionReply);
        reply.seq = msg.seq;
        if msg.heartbeat_interval.is_some() {
            reply.heartbeat_interval = Some(hb_now);
        }
        if msg.keep_active_partition_tie_breaker.is_some() {
            reply.keep_active_partition_tie_breaker = kap_now;
        }
        self.send(id, &reply);
    }

    fn on_echo_request(&mut self, id: ClientId, msg: &Msg<'_>, frame: &[u8]) {
        if !self.check_initialised(id, msg, "echo request") {
            return;
        }
        // The reply is the request with only the type changed.
        let [t0, t1] = u16::from(MsgType::EchoReply).to_be_bytes();
        self.enqueue(id, frame.len(), |buf| {
            buf.copy_from_slice(frame);
            if let Some(t) = buf.get_mut(..2) {
                t.copy_from_slice(&[t0, t1]);
            }
            true
        });
    }

    fn on_node_list(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !self.check_initialised(id, msg, "node list") {
            return;
        }
        let Some(list_type) = msg.node_list_type else {
            log::error!(
                "Received node list message without node list type set. Sending error reply."
            );
            self.send(
                id,
                &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        let Some(seq) = msg.seq else {
            log::error!("Received node list message without seq number set. Sending error reply.");
            self.send(
                id,
                &server_error(None, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        let Some((slot, idx)) = self.member_of(id) else {
            return;
        };
        let Some(mut nodes) = self.node_scratch.take() else {
            return;
        };
        // Cannot fail: process() refused lists longer than the capacity.
        if msg.nodes.decode_into(&mut nodes).is_ok() {
            self.node_list(now, id, msg, (list_type, seq), (slot, idx), &nodes);
        }
        self.node_scratch = Some(nodes);
    }

    /// The node list handler proper, with the nodes decoded.
    fn node_list(
        &mut self,
        now: Timestamp,
        id: ClientId,
        msg: &Msg<'_>,
        (list_type, seq): (NodeListType, u32),
        (slot, idx): (usize, usize),
        nodes: &[NodeInfo],
    ) {
        let heuristics = msg.heuristics.unwrap_or(Heuristics::Undefined);
        let event = match list_type {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                let initial = list_type == NodeListType::InitialConfig;
                log::debug!(
                    "Client {} sent {} node list: seq={seq} config_version={:?} nodes={:?}",
                    self.addr(id),
                    if initial { "initial" } else { "changed" },
                    msg.config_version,
                    NodeIds(nodes)
                );
                algo::Event::ConfigList {
                    list: nodes,
                    initial,
                }
            }
            NodeListType::Membership => {
                let Some(ring_id) = msg.ring_id else {
                    log::error!(
                        "Received node list message without ring id number set. Sending error reply."
                    );
                    self.send(
                        id,
                        &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
                    );
                    return;
                };
                log::debug!(
                    "Client {} sent membership node list: seq={seq} ring_id={ring_id} heuristics={heuristics} nodes={:?}",
                    self.addr(id),
                    NodeIds(nodes)
                );
                algo::Event::MembershipList {
                    ring_id,
                    list: nodes,
                    heuristics,
                }
            }
            NodeListType::Quorum => {
                let Some(quorate) = msg.quorate else {
                    log::error!(
                        "Received quorum list message without quorate set. Sending error reply."
                    );
                    self.send(
                        id,
                        &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
                    );
                    return;
                };
                log::debug!(
                    "Client {} sent quorum node list: seq={seq} quorate={quorate} nodes={:?}",
                    self.addr(id),
                    NodeIds(nodes)
                );
                algo::Event::QuorumList
            }
            NodeListType::Unknown(_) => return,
        };
        let Some(vote) = self.decide(now, id, msg, (slot, idx), event) else {
            return;
        };
        // Store the list (qnetd_client_msg_received_node_list).
        let Some(member) = self
            .clusters
            .get_mut(slot)
            .and_then(|c| c.members.get_mut(idx))
        else {
            return;
        };
        match list_type {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                store_list(&mut member.config_list, nodes);
                member.config_version = msg.config_version;
            }
            NodeListType::Membership => {
                store_list(&mut member.membership_list, nodes);
                member.ring_id = msg.ring_id.unwrap_or(member.ring_id);
                member.membership_heuristics = heuristics;
                member.heuristics = heuristics;
            }
            NodeListType::Quorum | NodeListType::Unknown(_) => {
                store_list(&mut member.quorum_list, nodes);
                member.quorate = msg.quorate;
            }
        }
        let mut reply = Msg::new(MsgType::NodeListReply);
        reply.seq = Some(seq);
        reply.node_list_type = Some(list_type);
        self.send_vote_reply(id, (slot, idx), reply, vote);
    }

    fn addr(&self, id: ClientId) -> PeerAddr {
        self.client(id)
            .map_or(PeerAddr(SocketAddr::from(([0, 0, 0, 0], 0))), |c| c.addr)
    }

    /// Runs the algorithm for a client's message. On an error code the
    /// client gets SERVER_ERROR with it and `None` comes back; otherwise the
    /// vote for the reply.
    fn decide(
        &mut self,
        now: Timestamp,
        id: ClientId,
        msg: &Msg<'_>,
        (slot, idx): (usize, usize),
        event: algo::Event<'_>,
    ) -> Option<Vote> {
        match self.run_algorithm(now, slot, idx, event) {
            Ok(vote) => {
                log::debug!("Algorithm result vote is {vote}");
                Some(vote)
            }
            Err(code) => {
                log::error!("Algorithm returned error code. Sending error reply.");
                self.send(id, &server_error(msg.seq, code));
                None
            }
        }
    }

    /// The preamble of ASK_FOR_VOTE and VOTE_INFO_REPLY: TLS and INIT
    /// checks, then the sequence number (DOESNT_CONTAIN_REQUIRED_OPTION
    /// without it). Returns the sequence number and the member.
    fn member_request(
        &mut self,
        id: ClientId,
        msg: &Msg<'_>,
        what: &str,
    ) -> Option<(u32, (usize, usize))> {
        if !self.check_initialised(id, msg, what) {
            return None;
        }
        let Some(seq) = msg.seq else {
            log::error!("Received {what} message without seq number set. Sending error reply.");
            self.send(
                id,
                &server_error(None, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return None;
        };
        Some((seq, self.member_of(id)?))
    }

    /// Sends a reply carrying the vote and the member's stored ring id
    /// (NODE_LIST_REPLY, ASK_FOR_VOTE_REPLY, HEURISTICS_CHANGE_REPLY) and
    /// records the vote.
    fn send_vote_reply(
        &mut self,
        id: ClientId,
        (slot, idx): (usize, usize),
        mut reply: Msg<'_>,
        vote: Vote,
    ) {
        self.record_reply_vote(slot, idx, vote);
        reply.vote = Some(vote);
        reply.ring_id = self
            .clusters
            .get(slot)
            .and_then(|c| c.members.get(idx))
            .map(|m| m.ring_id);
        self.send(id, &reply);
    }

    fn on_ask_for_vote(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        let Some((seq, member)) = self.member_request(id, msg, "ask for vote") else {
            return;
        };
        log::debug!("Client {} asked for a vote: seq={seq}", self.addr(id));
        let Some(vote) = self.decide(now, id, msg, member, algo::Event::AskForVote) else {
            return;
        };
        let mut reply = Msg::new(MsgType::AskForVoteReply);
        reply.seq = Some(seq);
        self.send_vote_reply(id, member, reply, vote);
    }

    fn on_vote_info_reply(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        let Some((seq, member)) = self.member_request(id, msg, "vote info reply") else {
            return;
        };
        log::debug!(
            "Client {} replied back to vote info message: seq={seq}",
            self.addr(id)
        );
        // No reply on success.
        let _ = self.decide(now, id, msg, member, algo::Event::VoteInfoReply { seq });
    }

    fn on_heuristics_change(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !self.check_initialised(id, msg, "heuristics change") {
            return;
        }
        let (Some(seq), Some(heuristics)) = (msg.seq, msg.heuristics) else {
            log::error!(
                "Received heuristics change message without seq number set or with undefined heuristics. Sending error reply."
            );
            self.send(
                id,
                &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        let Some(member) = self.member_of(id) else {
            return;
        };
        log::debug!(
            "Client {} sent heuristics change: seq={seq} heuristics={heuristics}",
            self.addr(id)
        );
        let event = algo::Event::HeuristicsChange { heuristics };
        let Some(vote) = self.decide(now, id, msg, member, event) else {
            return;
        };
        if let Some(m) = self
            .clusters
            .get_mut(member.0)
            .and_then(|c| c.members.get_mut(member.1))
        {
            m.regular_heuristics = heuristics;
            m.heuristics = heuristics;
        }
        let mut reply = Msg::new(MsgType::HeuristicsChangeReply);
        reply.seq = Some(seq);
        reply.heuristics = Some(heuristics);
        self.send_vote_reply(id, member, reply, vote);
    }

    // ------------------------------------------------------- disconnects

    /// Removes a client whose socket is closed: runs the algorithm's
    /// disconnect callback (which may send VOTE_INFOs to the rest of the
    /// cluster), leaves the cluster (deleting it when empty) and frees the
    /// slot (`qnetd_instance_client_disconnect`).
    pub fn disconnect(&mut self, now: Timestamp, id: ClientId) {
        self.disconnect_inner(now, id, false);
    }

    fn disconnect_inner(&mut self, now: Timestamp, id: ClientId, server_going_down: bool) {
        let Some(client) = self.client(id) else {
            return;
        };
        log::debug!(
            "Client {} (init_received {}, cluster {}, node_id {}) disconnect{}",
            client.addr,
            u8::from(client.init_received),
            client.name(),
            client.node_id,
            if server_going_down {
                " (server is going down)"
            } else {
                ""
            }
        );
        if client.init_received {
            log::info!(
                "client disconnected addr={} cluster={} node_id={}",
                client.addr,
                client.name(),
                client.node_id
            );
        }
        let init = client.init_received;
        if let (true, Some((slot, idx))) = (init, self.member_of(id)) {
            let _ = self.run_algorithm(
                now,
                slot,
                idx,
                algo::Event::Disconnect { server_going_down },
            );
            if let Some(cluster) = self.clusters.get_mut(slot) {
                if idx < cluster.members.len() {
                    cluster.members.remove(idx);
                }
                if cluster.members.is_empty() {
                    self.clusters.remove(slot);
                }
            }
        }
        if let Some((client, timers)) = self.client_mut_split(id) {
            timers.set(id, TimerKind::Dpd, &mut client.dpd, None);
            timers.set(id, TimerKind::Algo, &mut client.algo_timer, None);
        }
        if let Some(slot) = self
            .slots
            .get_mut(usize::try_from(id.index()).unwrap_or(usize::MAX))
            && slot.client.take().is_some()
        {
            self.free.push(id.index());
            self.clients -= 1;
        }
    }

    /// Server shutdown: every client is dropped without a message; the
    /// algorithms are told the server is going down (ffsplit then sends
    /// nothing). Returns the clients whose sockets the shell must close.
    pub fn shutdown(&mut self, now: Timestamp) -> Vec<ClientId> {
        let ids: Vec<ClientId> = self
            .slots
            .iter()
            .filter_map(|s| s.client.as_ref().map(|c| c.id))
            .collect();
        for &id in &ids {
            self.disconnect_inner(now, id, true);
        }
        self.events.clear();
        self.dirty.clear();
        ids
    }
}

/// Header checks done as soon as the 6 header bytes are in
/// (`msgio_read`): unknown type, then size. Returns the skip to perform.
fn check_header(header: Header, max_receive: usize) -> Option<Skip> {
    let remaining = u64::from(header.payload_len);
    if !header.msg_type.is_known() {
        // With an empty body the reference completes the message before
        // it records why it skips it, and replies with error code 0.
        if remaining == 0 {
            return Some(Skip {
                reason: ReplyErrorCode::NoError,
                remaining,
            });
        }
        log::warn!(
            "Client sent unsupported msg type {}. Skipping message",
            u16::from(header.msg_type)
        );
        return Some(Skip {
            reason: ReplyErrorCode::UnsupportedMessage,
            remaining,
        });
    }
    if header.total_len_u64() > max_receive as u64 {
        log::warn!(
            "Client wants to send too long message {} bytes. Skipping message",
            header.payload_len
        );
        return Some(Skip {
            reason: ReplyErrorCode::MessageTooLong,
            remaining,
        });
    }
    None
}

/// Read-only facts about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// Peer address.
    pub addr: PeerAddr,
    /// Heartbeat interval in ms.
    pub heartbeat_interval: u32,
    /// TLS started on this connection.
    pub tls_started: bool,
    /// Client certificate checked against the cluster name.
    pub tls_peer_verified: bool,
    /// INIT succeeded.
    pub init_received: bool,
}

/// Debug-formats the node ids of a list without allocating.
struct NodeIds<'a>(&'a [NodeInfo]);

impl core::fmt::Debug for NodeIds<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|n| n.node_id))
            .finish()
    }
}
