//! A sans-IO test harness: an [`Instance`] driven purely through bytes,
//! with a fake clock (quinn's `Pair` idea). Clients are named by a key.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use qnetd::core::ClientId;
use qnetd::core::{Event, Instance, InstanceConfig, Timestamp};
use qnetd::proto::build::{self, Init};
use qnetd::proto::{
    DecisionAlgorithm, Heuristics, Msg, MsgType, ReplyErrorCode, RingId, TieBreaker,
    TieBreakerMode, Vote,
};

/// A decoded server message with owned bytes.
#[derive(Debug, Clone)]
pub struct Got {
    pub bytes: Vec<u8>,
}

impl Got {
    pub fn msg(&self) -> Msg<'_> {
        Msg::parse(&self.bytes).expect("server message parses")
    }
    pub fn ty(&self) -> MsgType {
        self.msg().msg_type
    }
    pub fn vote(&self) -> Option<Vote> {
        self.msg().vote
    }
    pub fn seq(&self) -> Option<u32> {
        self.msg().seq
    }
    pub fn error(&self) -> Option<ReplyErrorCode> {
        self.msg().reply_error_code
    }
    pub fn ring(&self) -> Option<RingId> {
        self.msg().ring_id
    }
}

pub struct Harness {
    pub inst: Instance,
    pub now: Timestamp,
    pub clients: HashMap<u32, ClientId>,
    inbox: HashMap<ClientId, VecDeque<Got>>,
    pub closed: Vec<ClientId>,
    /// Per-client next sequence number (the client's own counter).
    seqs: HashMap<u32, u32>,
    next_port: u16,
}

pub fn lowest() -> TieBreaker {
    TieBreaker {
        mode: TieBreakerMode::Lowest,
        node_id: 0,
    }
}

pub fn ring(node: u32, seq: u64) -> RingId {
    RingId { node_id: node, seq }
}

impl Harness {
    pub fn new(cfg: InstanceConfig) -> Self {
        Self {
            inst: Instance::new(cfg),
            now: Timestamp::from_millis(10_000),
            clients: HashMap::new(),
            inbox: HashMap::new(),
            closed: Vec::new(),
            seqs: HashMap::new(),
            next_port: 50_000,
        }
    }

    pub fn plain() -> Self {
        Self::new(InstanceConfig {
            tls: qnetd::proto::TlsSupported::Unsupported,
            ..InstanceConfig::default()
        })
    }

    /// Opens a new connection for `key` (replacing an old one).
    pub fn connect(&mut self, key: u32) -> ClientId {
        self.next_port += 1;
        let addr: SocketAddr = format!("127.0.0.1:{}", self.next_port).parse().unwrap();
        let id = self.inst.accept(self.now, addr).expect("accepted");
        self.clients.insert(key, id);
        self.seqs.insert(key, 1);
        id
    }

    pub fn id(&self, key: u32) -> ClientId {
        self.clients[&key]
    }

    /// The client's next sequence number.
    pub fn seq(&mut self, key: u32) -> u32 {
        let s = self.seqs.entry(key).or_insert(1);
        let v = *s;
        *s += 1;
        v
    }

    pub fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(Event::Close(id)) = self.inst.poll_event() {
                self.closed.push(id);
                self.inst.disconnect(self.now, id);
                progressed = true;
            }
            while let Some(id) = self.inst.poll_transmit() {
                let bytes = self.inst.outgoing(id).to_vec();
                self.inst.consume_outgoing(id, bytes.len());
                let (frames, rest) = super::wire::split_frames(&bytes);
                let inbox = self.inbox.entry(id).or_default();
                inbox.extend(frames.into_iter().map(|f| Got { bytes: f.to_vec() }));
                assert!(rest.is_empty());
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    pub fn send_bytes(&mut self, key: u32, bytes: &[u8]) -> qnetd::core::Input {
        let id = self.id(key);
        let input = self.inst.handle_input(self.now, id, bytes);
        self.drain();
        input
    }

    pub fn send(&mut self, key: u32, msg: &Msg<'_>) {
        let bytes = build::to_bytes(msg);
        let input = self.send_bytes(key, &bytes);
        assert_eq!(input.consumed, bytes.len());
    }

    pub fn recv(&mut self, key: u32) -> Option<Got> {
        let id = self.id(key);
        self.inbox.get_mut(&id).and_then(VecDeque::pop_front)
    }

    pub fn recv_all(&mut self, key: u32) -> Vec<Got> {
        let id = self.id(key);
        self.inbox.remove(&id).map(Vec::from).unwrap_or_default()
    }

    /// Takes the next message, which must be of type `ty`.
    pub fn expect(&mut self, key: u32, ty: MsgType) -> Got {
        let got = self
            .recv(key)
            .unwrap_or_else(|| panic!("client {key}: expected {ty}, got nothing"));
        assert_eq!(got.ty(), ty, "client {key}: {:?}", got.msg());
        got
    }

    pub fn expect_nothing(&mut self, key: u32) {
        let left = self.recv_all(key);
        assert!(
            left.is_empty(),
            "client {key}: unexpected {:?}",
            left.iter().map(|g| g.msg().msg_type).collect::<Vec<_>>()
        );
    }

    pub fn is_closed(&self, key: u32) -> bool {
        self.closed.contains(&self.clients[&key])
    }

    /// Advances the clock `ms - 1` ms with client `key` still open, then
    /// 1 ms more, after which it must be closed (a deadline of exactly
    /// `ms`).
    pub fn expect_closed_after(&mut self, key: u32, ms: u64) {
        self.advance(ms - 1);
        assert!(!self.is_closed(key), "client {key} closed before {ms} ms");
        self.advance(1);
        assert!(self.is_closed(key), "client {key} still open after {ms} ms");
    }

    pub fn advance(&mut self, ms: u64) {
        let target = self.now.add_millis(ms);
        // Step through every deadline on the way, like a real clock.
        while let Some(next) = self.inst.poll_timeout() {
            if next > target {
                break;
            }
            self.now = self.now.max(next);
            self.inst.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
        self.inst.handle_timeout(self.now);
        self.drain();
    }

    /// PREINIT + INIT for `key`, checking the replies; returns the INIT
    /// reply's error code.
    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per INIT field reads best in tests"
    )]
    pub fn join_with(
        &mut self,
        key: u32,
        cluster: &[u8],
        node_id: u32,
        algorithm: DecisionAlgorithm,
        tie_breaker: TieBreaker,
        heartbeat: u32,
        ring_id: RingId,
    ) -> ReplyErrorCode {
        self.connect(key);
        let s = self.seq(key);
        self.send(key, &build::preinit(s, cluster));
        self.expect(key, MsgType::PreinitReply);
        let s = self.seq(key);
        self.send(
            key,
            &build::init(&Init {
                seq: s,
                node_id,
                algorithm,
                heartbeat_interval: heartbeat,
                tie_breaker,
                ring_id,
            }),
        );
        self.expect(key, MsgType::InitReply).error().unwrap()
    }

    /// Joins `key` as node `key` of `cluster` with the usual settings.
    pub fn join(
        &mut self,
        key: u32,
        cluster: &[u8],
        algorithm: DecisionAlgorithm,
        ring_id: RingId,
    ) {
        let e = self.join_with(key, cluster, key, algorithm, lowest(), 8000, ring_id);
        assert_eq!(e, ReplyErrorCode::NoError, "join of {key}");
    }

    pub fn config(&mut self, key: u32, ids: &[u32]) -> Got {
        let s = self.seq(key);
        self.send(key, &build::config_list(s, true, None, ids));
        self.expect(key, MsgType::NodeListReply)
    }

    /// Sends a membership list; returns everything the client got back.
    pub fn membership(
        &mut self,
        key: u32,
        ring_id: RingId,
        ids: &[u32],
        h: Heuristics,
    ) -> Vec<Got> {
        let s = self.seq(key);
        self.send(key, &build::membership_list(s, ring_id, ids, h));
        self.recv_all(key)
    }

    pub fn reply_vote_info(&mut self, key: u32, vote_info: &Got) {
        let seq = vote_info.seq().unwrap();
        self.send(key, &build::vote_info_reply(seq));
    }
}
