//! The scenario DSL: a scenario is plain data (a list of steps), built with
//! a small fluent API so that it reads like the behaviour it pins:
//!
//! ```text
//! let mut s = Scenario::new("ffsplit_2n_split_nack_before_ack");
//! s.client(1).join(&[1, 2]);                 // PREINIT, INIT, SET_OPTION(KAP), config
//! s.client(2).join(&[1, 2]);
//! s.client(1).membership(ring(1, 8), &[1, 2]);
//! s.client(2).membership(ring(1, 8), &[1, 2]).expect_vote(Vote::Ack);
//! s.client(2).manual_votes();
//! s.client(1).membership(ring(1, 12), &[1]);
//! s.client(2).membership(ring(2, 12), &[2]).expect_vote(Vote::Nack);
//! s.client(1).expect_silent();               // no ACK before 2 confirms the NACK
//! s.client(2).vote_reply();
//! s.client(1).expect_vote(Vote::Ack);
//! ```
//!
//! Client settings (`algorithm`, `tie_breaker`, `heartbeat`, `kap`, ...) are
//! builder state: they are captured into the requests built after them.
//! Every message step waits for the server's answer and then until all
//! clients have been quiet for a while (see `runner`).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

use qnetd::proto::{
    DecisionAlgorithm, Heuristics, MsgType, NodeListType, NodeState, Quorate, ReplyErrorCode,
    RingId, TieBreaker, TieBreakerMode, Vote,
};

use super::qclient::{InitFields, Req, SeqMode, nodes, nodes_with_state};

mod client;
#[allow(
    unused_imports,
    reason = "each test binary uses a different part of the support code"
)]
pub(crate) use client::C;

/// A ring id `node.seq`.
pub(crate) const fn ring(node_id: u32, seq: u64) -> RingId {
    RingId { node_id, seq }
}

/// Tie-breaker "lowest node id".
pub(crate) const LOWEST: TieBreaker = TieBreaker {
    mode: TieBreakerMode::Lowest,
    node_id: 0,
};
/// Tie-breaker "highest node id".
pub(crate) const HIGHEST: TieBreaker = TieBreaker {
    mode: TieBreakerMode::Highest,
    node_id: 0,
};
/// Tie-breaker "this node id".
pub(crate) const fn node_tb(node_id: u32) -> TieBreaker {
    TieBreaker {
        mode: TieBreakerMode::NodeId,
        node_id,
    }
}

/// The decision algorithms, as INIT sends them.
pub(crate) mod algo {
    use super::DecisionAlgorithm;
    /// `test`.
    pub(crate) const TEST: DecisionAlgorithm = DecisionAlgorithm::Test;
    /// `ffsplit`.
    pub(crate) const FFSPLIT: DecisionAlgorithm = DecisionAlgorithm::Ffsplit;
    /// `2nodelms`.
    pub(crate) const TWO_NODE_LMS: DecisionAlgorithm = DecisionAlgorithm::TwoNodeLms;
    /// `lms`.
    pub(crate) const LMS: DecisionAlgorithm = DecisionAlgorithm::Lms;
}

/// What a message step waits for before settling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// One server message that is not a VOTE_INFO (the reply), or a close.
    Reply,
    /// Nothing in particular: just let things settle.
    Quiet,
    /// The server closing the connection.
    Closed,
    /// This many direct answers (pipelined requests sent in one write).
    Replies(usize),
}

/// A check of what one client has seen so far, evaluated on every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The latest ACK/NACK/ASK_LATER/WAIT_FOR_REPLY received (VOTE_INFO or
    /// any reply's VOTE; NO_CHANGE leaves the previous value) is this.
    Vote(Vote),
    /// The latest message received carries this error code (SERVER_ERROR
    /// or INIT_REPLY).
    Error(ReplyErrorCode),
    /// The latest message received has this type.
    LastType(MsgType),
    /// The server has closed the connection.
    Closed,
    /// The server sent this client nothing during the previous step.
    Silent,
    /// The latest received message's vote is exactly this, NO_CHANGE
    /// included.
    ReplyVote(Vote),
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Open the client's TCP connection.
    Connect,
    /// Send a request.
    Send {
        /// The request.
        req: Req,
        /// Where its seq comes from.
        seq: SeqMode,
        /// What to wait for.
        wait: Wait,
    },
    /// Close the client's connection.
    Disconnect,
    /// Automatic VOTE_INFO_REPLY on/off.
    AutoVoteReply(bool),
    /// Keepalive echoes on/off.
    Keepalive(bool),
    /// Sleep, then settle.
    Sleep(u64),
    /// Wait until each listed client has received a new VOTE_INFO (at most
    /// the given ms), then settle.
    WaitVoteInfos(Vec<usize>, u64),
    /// Wait until the server closes the client's connection (at most the
    /// given ms), then settle.
    WaitClosed(u64),
    /// Check what the client has seen (takes no time).
    Expect(Expect),
    /// Send a command line to the management socket (as
    /// `corosync-qnetd-tool` does) and record the reply.
    Ipc(String),
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// The client it concerns, if any.
    pub client: Option<usize>,
    /// What it does.
    pub action: Action,
}

/// Builder state of one client.
#[derive(Debug, Clone)]
pub(crate) struct ClientSpec {
    /// Label in reports (`n1`, `other/n1`, `n1'` ...).
    pub label: String,
    /// Node id sent in INIT.
    pub node_id: u32,
    /// Cluster name sent in PREINIT.
    pub cluster: Vec<u8>,
    /// Algorithm sent in INIT.
    pub algorithm: DecisionAlgorithm,
    /// Tie-breaker sent in INIT.
    pub tie_breaker: TieBreaker,
    /// Heartbeat sent in INIT.
    pub heartbeat: u32,
    /// Ring id sent in INIT (updated by every membership list).
    pub ring: RingId,
    /// KAP value of the SET_OPTION sent by `handshake`; `None`: no
    /// SET_OPTION at all (the server default applies).
    pub kap: Option<bool>,
    /// Heuristics put in membership lists by default.
    pub heuristics: Option<Heuristics>,
}

/// A scenario: server settings, clients and steps.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// Name (the behaviour it pins).
    pub name: String,
    /// Extra `-S key=value` server settings.
    pub settings: Vec<String>,
    /// Extra command line arguments (e.g. `-m 2`), before `-S`.
    pub extra_args: Vec<String>,
    /// The clients.
    pub clients: Vec<ClientSpec>,
    /// The steps.
    pub steps: Vec<Step>,
    defaults: ClientSpec,
}

impl Scenario {
    /// An empty scenario: cluster `testcluster`, ffsplit, lowest
    /// tie-breaker, heartbeat 1000 ms, INIT ring `1.4`, KAP on.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            settings: Vec::new(),
            extra_args: Vec::new(),
            clients: Vec::new(),
            steps: Vec::new(),
            defaults: ClientSpec {
                label: String::new(),
                node_id: 0,
                cluster: b"testcluster".to_vec(),
                algorithm: DecisionAlgorithm::Ffsplit,
                tie_breaker: LOWEST,
                heartbeat: 1000,
                ring: ring(1, 4),
                kap: Some(true),
                heuristics: None,
            },
        }
    }

    /// Adds a server `-S` setting (`key=value`).
    pub(crate) fn setting(&mut self, kv: &str) -> &mut Self {
        self.settings.push(kv.to_string());
        self
    }

    /// Adds server command line arguments (`-m`, `2`).
    pub(crate) fn args(&mut self, args: &[&str]) -> &mut Self {
        self.extra_args
            .extend(args.iter().map(|a| (*a).to_string()));
        self
    }

    /// Default algorithm of clients created from now on.
    pub(crate) fn algorithm(&mut self, a: DecisionAlgorithm) -> &mut Self {
        self.defaults.algorithm = a;
        self
    }

    /// Default tie-breaker of clients created from now on.
    pub(crate) fn tie_breaker(&mut self, tb: TieBreaker) -> &mut Self {
        self.defaults.tie_breaker = tb;
        self
    }

    /// Default heartbeat of clients created from now on.
    pub(crate) fn heartbeat(&mut self, ms: u32) -> &mut Self {
        self.defaults.heartbeat = ms;
        self
    }

    /// Default ring id (INIT) of clients created from now on.
    pub(crate) fn init_ring(&mut self, r: RingId) -> &mut Self {
        self.defaults.ring = r;
        self
    }

    /// Default KAP SET_OPTION of clients created from now on (`None`: the
    /// clients send no SET_OPTION).
    pub(crate) fn kap(&mut self, kap: Option<bool>) -> &mut Self {
        self.defaults.kap = kap;
        self
    }

    fn find_or_add(&mut self, label: String, node_id: u32, cluster: Option<&[u8]>) -> usize {
        if let Some(i) = self.clients.iter().position(|c| c.label == label) {
            return i;
        }
        let mut spec = self.defaults.clone();
        spec.label = label;
        spec.node_id = node_id;
        if let Some(c) = cluster {
            spec.cluster = c.to_vec();
        }
        self.clients.push(spec);
        self.clients.len() - 1
    }

    /// Client `n<id>` with node id `id` (created on first use).
    pub(crate) fn client(&mut self, id: u32) -> C<'_> {
        let idx = self.find_or_add(format!("n{id}"), id, None);
        C { s: self, idx }
    }

    /// A further connection with its own label, e.g. a second connection
    /// claiming an existing node id.
    pub(crate) fn client_named(&mut self, label: &str, node_id: u32) -> C<'_> {
        let idx = self.find_or_add(label.to_string(), node_id, None);
        C { s: self, idx }
    }

    /// Client `<cluster>/n<id>` of another cluster.
    pub(crate) fn client_in(&mut self, cluster: &str, id: u32) -> C<'_> {
        let idx = self.find_or_add(format!("{cluster}/n{id}"), id, Some(cluster.as_bytes()));
        C { s: self, idx }
    }

    fn idx_of(&self, id: u32) -> usize {
        self.clients
            .iter()
            .position(|c| c.label == format!("n{id}"))
            .unwrap_or_else(|| panic!("no client n{id}"))
    }

    fn push(&mut self, client: Option<usize>, action: Action) {
        self.steps.push(Step { client, action });
    }

    /// Sleeps `ms`, then settles.
    pub(crate) fn sleep(&mut self, ms: u64) -> &mut Self {
        self.push(None, Action::Sleep(ms));
        self
    }

    /// Waits until each client `n<id>` has received a new VOTE_INFO (e.g.
    /// from an lms timer), then settles.
    pub(crate) fn wait_votes(&mut self, ids: &[u32]) -> &mut Self {
        self.wait_votes_within(ids, 4000)
    }

    /// As [`Scenario::wait_votes`], giving up after `ms`.
    pub(crate) fn wait_votes_within(&mut self, ids: &[u32], ms: u64) -> &mut Self {
        let idx = ids.iter().map(|&id| self.idx_of(id)).collect();
        self.push(None, Action::WaitVoteInfos(idx, ms));
        self
    }

    /// Asks the management socket (`status`, `list verbose`, ...) and
    /// records its reply, client addresses replaced by client labels, as a
    /// message to the pseudo client `ipc`.
    pub(crate) fn ipc(&mut self, command: &str) -> &mut Self {
        let idx = self.find_or_add("ipc".to_string(), 0, None);
        self.push(Some(idx), Action::Ipc(command.to_string()));
        self
    }

    /// Same as [`Scenario::wait_votes`] for clients given by label.
    pub(crate) fn wait_votes_of(&mut self, labels: &[&str]) -> &mut Self {
        let idx = labels
            .iter()
            .map(|l| {
                self.clients
                    .iter()
                    .position(|c| c.label == *l)
                    .unwrap_or_else(|| panic!("no client {l}"))
            })
            .collect();
        self.push(None, Action::WaitVoteInfos(idx, 4000));
        self
    }

    // Group builders: the steps a scenario repeats for several clients.

    /// Every client of `ids` joins (handshake + config list `config`), in
    /// order.
    pub(crate) fn join_all(&mut self, ids: &[u32], config: &[u32]) -> &mut Self {
        for &id in ids {
            self.client(id).join(config);
        }
        self
    }

    /// Every client of `ids` reports membership `list` in ring `r`, in
    /// order.
    pub(crate) fn members(&mut self, ids: &[u32], r: RingId, list: &[u32]) -> &mut Self {
        for &id in ids {
            self.client(id).membership(r, list);
        }
        self
    }

    /// Every node of `ids` reports membership `ids` in ring `r` (one
    /// partition).
    pub(crate) fn partition(&mut self, r: RingId, ids: &[u32]) -> &mut Self {
        self.members(ids, r, ids)
    }

    /// Node `id` reports itself alone in its own ring `id.seq` (its side of
    /// a split).
    pub(crate) fn alone(&mut self, id: u32, seq: u64) -> C<'_> {
        self.client(id).membership(ring(id, seq), &[id])
    }

    /// Expects, in order, the vote of each `(client, vote)` pair in a
    /// VOTE_INFO.
    pub(crate) fn expect_votes(&mut self, votes: &[(u32, Vote)]) -> &mut Self {
        for &(id, v) in votes {
            self.client(id).expect_vote(v);
        }
        self
    }
}

/// Hand-made wire bytes for malformed requests.
pub(crate) mod raw {
    /// One TLV.
    pub(crate) fn tlv(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + value.len());
        v.extend_from_slice(&ty.to_be_bytes());
        v.extend_from_slice(&u16::try_from(value.len()).expect("short TLV").to_be_bytes());
        v.extend_from_slice(value);
        v
    }

    /// A MSG_SEQ_NUMBER TLV.
    pub(crate) fn seq(n: u32) -> Vec<u8> {
        tlv(0, &n.to_be_bytes())
    }

    /// A NODE_INFO TLV around inner TLVs.
    pub(crate) fn node_info(inner: &[Vec<u8>]) -> Vec<u8> {
        tlv(17, &inner.concat())
    }

    /// A message of type `ty` whose payload is `parts` concatenated.
    pub(crate) fn msg(ty: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        let payload = parts.concat();
        let mut v = Vec::with_capacity(6 + payload.len());
        v.extend_from_slice(&ty.to_be_bytes());
        v.extend_from_slice(&u32::try_from(payload.len()).expect("len").to_be_bytes());
        v.extend_from_slice(&payload);
        v
    }

    /// A header announcing `len` payload bytes, followed by `len` zero bytes.
    pub(crate) fn sized(ty: u16, len: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(6 + len as usize);
        v.extend_from_slice(&ty.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v.resize(6 + len as usize, 0);
        v
    }

    /// Bytes from a hex string.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}

/// Request constructors for [`C::pipelined`] and [`C::send`].
pub(crate) mod req {
    use qnetd::proto::{Heuristics, NodeListType, NodeState, Quorate, RingId};

    use crate::support::qclient::{Req, nodes, nodes_with_state};

    /// SET_OPTION(KAP).
    pub(crate) fn kap(on: bool) -> Req {
        Req::SetOption {
            heartbeat: None,
            kap: Some(on),
        }
    }

    /// Initial config list.
    pub(crate) fn config(ids: &[u32]) -> Req {
        Req::NodeList {
            kind: Some(NodeListType::InitialConfig),
            ring: None,
            config_version: None,
            quorate: None,
            nodes: nodes(ids),
            heuristics: None,
        }
    }

    /// Membership list.
    pub(crate) fn membership(ring: RingId, ids: &[u32], h: Option<Heuristics>) -> Req {
        Req::NodeList {
            kind: Some(NodeListType::Membership),
            ring: Some(ring),
            config_version: None,
            quorate: None,
            nodes: nodes(ids),
            heuristics: h,
        }
    }

    /// Quorum list, all listed nodes members.
    pub(crate) fn quorum(quorate: bool, ids: &[u32]) -> Req {
        Req::NodeList {
            kind: Some(NodeListType::Quorum),
            ring: None,
            config_version: None,
            quorate: Some(if quorate {
                Quorate::Quorate
            } else {
                Quorate::Inquorate
            }),
            nodes: nodes_with_state(ids, NodeState::Member),
            heuristics: None,
        }
    }
}
