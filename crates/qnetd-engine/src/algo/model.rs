//! The data the decision algorithms work on: a cluster and its members.
//!
//! A [`Member`] is one successfully initialised client, with everything the
//! reference keeps in `struct qnetd_client` that an algorithm or the status
//! report reads (`qdevices/qnetd-client.h`). Members of a [`Cluster`] are kept
//! sorted by node id, because the reference iterates clients in that order
//! and some results depend on it (`qnetd_cluster_list_add_client`).

use crate::core::ClientId;
use crate::proto::{
    DecisionAlgorithm, Heuristics, NodeInfo, Quorate, RingId, TieBreaker, Vote, list_contains,
};

/// Per-client state of the ffsplit algorithm
/// (`enum qnetd_algo_ffsplit_client_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FfsplitClientState {
    /// Nothing in flight.
    #[default]
    WaitingForChange,
    /// A NACK is to be sent or awaits its VOTE_INFO_REPLY.
    SendingNack,
    /// An ACK is to be sent or awaits its VOTE_INFO_REPLY.
    SendingAck,
}

/// Per-cluster state of the ffsplit algorithm
/// (`enum qnetd_algo_ffsplit_cluster_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FfsplitClusterState {
    /// Nothing in flight.
    #[default]
    WaitingForChange,
    /// Membership not yet stable.
    WaitingForStableMembership,
    /// NACKs sent, waiting for their replies.
    SendingNacks,
    /// ACKs sent, waiting for their replies.
    SendingAcks,
}

/// One initialised client of a cluster.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection.
    pub client: ClientId,
    /// Node id (unique within the cluster).
    pub node_id: u32,
    /// Decision algorithm.
    pub algorithm: DecisionAlgorithm,
    /// Tie-breaker.
    pub tie_breaker: TieBreaker,
    /// Keep-active-partition tie-breaker (ffsplit).
    pub keep_active_partition_tie_breaker: bool,
    /// Last configuration node list.
    pub config_list: Vec<NodeInfo>,
    /// Config version sent with the last configuration list.
    pub config_version: Option<u64>,
    /// Last membership node list.
    pub membership_list: Vec<NodeInfo>,
    /// Last quorum node list.
    pub quorum_list: Vec<NodeInfo>,
    /// Quorate flag of the last quorum node list.
    pub quorate: Option<Quorate>,
    /// Ring id from INIT, then from every membership list.
    pub ring_id: RingId,
    /// Heuristics of the last membership list.
    pub membership_heuristics: Heuristics,
    /// Heuristics of the last HEURISTICS_CHANGE.
    pub regular_heuristics: Heuristics,
    /// The latest of the two above.
    pub heuristics: Heuristics,
    /// Last vote sent in any reply or VOTE_INFO (Undefined: none yet).
    pub last_sent_vote: Vote,
    /// Last ACK or NACK sent (Undefined: none yet).
    pub last_sent_ack_nack_vote: Vote,
    /// ffsplit: client state.
    pub ffsplit_state: FfsplitClientState,
    /// ffsplit: sequence number of the last VOTE_INFO, expected back.
    pub vote_info_expected_seq: u32,
    /// lms / 2nodelms: last stored result (Undefined = never voted).
    pub last_result: Vote,
    /// Sequence number of the last VOTE_INFO sent by the algorithm timer.
    pub timer_vote_info_seq: u32,
}

impl Member {
    /// A freshly initialised member with no node lists.
    #[must_use]
    pub fn new(
        client: ClientId,
        node_id: u32,
        algorithm: DecisionAlgorithm,
        tie_breaker: TieBreaker,
        ring_id: RingId,
        keep_active_partition_tie_breaker: bool,
    ) -> Self {
        Self {
            client,
            node_id,
            algorithm,
            tie_breaker,
            keep_active_partition_tie_breaker,
            config_list: Vec::new(),
            config_version: None,
            membership_list: Vec::new(),
            quorum_list: Vec::new(),
            quorate: None,
            ring_id,
            membership_heuristics: Heuristics::Undefined,
            regular_heuristics: Heuristics::Undefined,
            heuristics: Heuristics::Undefined,
            last_sent_vote: Vote::Undefined,
            last_sent_ack_nack_vote: Vote::Undefined,
            ffsplit_state: FfsplitClientState::WaitingForChange,
            vote_info_expected_seq: 0,
            last_result: Vote::Undefined,
            timer_vote_info_seq: 0,
        }
    }

    /// Records a vote sent to this member (`last_sent_vote` and, for ACK and
    /// NACK, `last_sent_ack_nack_vote`). Returns whether the ACK/NACK state
    /// changed, for logging.
    pub fn record_vote(&mut self, vote: Vote) -> bool {
        self.last_sent_vote = vote;
        if vote.is_ack_or_nack() && self.last_sent_ack_nack_vote != vote {
            self.last_sent_ack_nack_vote = vote;
            return true;
        }
        false
    }
}

/// Copies `src` into `dst`, reusing `dst`'s allocation when it is large
/// enough (so steady-state updates do not allocate).
pub fn store_list(dst: &mut Vec<NodeInfo>, src: &[NodeInfo]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// A cluster: every initialised client that sent the same cluster name.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Cluster name bytes (exact, case-sensitive grouping key).
    pub name: Box<[u8]>,
    /// Members in ascending node-id order.
    pub members: Vec<Member>,
    /// ffsplit: cluster state.
    pub ffsplit_state: FfsplitClusterState,
    /// ffsplit: node ids of the partition selected last time.
    pub quorate_partition: Vec<u32>,
    /// ffsplit: work units (list elements visited, comparisons made) spent
    /// by the runs of this cluster so far. A diagnostic that lets tests
    /// bound the cost of a message by counting rather than timing.
    pub ffsplit_work: u64,
}

impl Cluster {
    /// An empty cluster.
    #[must_use]
    pub fn new(name: &[u8]) -> Self {
        Self {
            name: name.into(),
            members: Vec::new(),
            ffsplit_state: FfsplitClusterState::WaitingForChange,
            quorate_partition: Vec::new(),
            ffsplit_work: 0,
        }
    }

    /// The cluster name for logs and reports, formatted lazily as lossy
    /// UTF-8 (no allocation unless it is actually printed).
    #[must_use]
    pub fn display_name(&self) -> NameDisplay<'_> {
        NameDisplay(&self.name)
    }

    /// Index of the member with `node_id`.
    #[must_use]
    pub fn position(&self, node_id: u32) -> Option<usize> {
        self.members
            .binary_search_by_key(&node_id, |m| m.node_id)
            .ok()
    }

    /// Inserts a member at its node-id position.
    ///
    /// Returns `false` (and does nothing) if the node id is already there.
    pub fn insert(&mut self, member: Member) -> bool {
        match self
            .members
            .binary_search_by_key(&member.node_id, |m| m.node_id)
        {
            Ok(_) => false,
            Err(pos) => {
                self.members.insert(pos, member);
                true
            }
        }
    }
}

/// What an algorithm asks the core to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Queue a VOTE_INFO for a member's client.
    VoteInfo {
        /// The member's node id.
        node_id: u32,
        /// Sequence number of the VOTE_INFO.
        seq: u32,
        /// The vote.
        vote: Vote,
        /// Ring id to put in the message.
        ring_id: RingId,
    },
    /// (Re)start the member's algorithm timer (heartbeat / 4).
    StartTimer {
        /// The member's node id.
        node_id: u32,
    },
    /// Stop the member's algorithm timer.
    StopTimer {
        /// The member's node id.
        node_id: u32,
    },
}

/// Whether `node_id` is in `list`.
#[must_use]
pub fn in_list(list: &[NodeInfo], node_id: u32) -> bool {
    list_contains(list, node_id)
}

/// Displays a name received from the network (a cluster name) without
/// allocating, safe for a log line or a terminal: printable UTF-8 is shown
/// as is, a backslash as `\\`, a control character (newline, ESC, C1
/// controls) as `\xNN` or `\u{NNNN}`, and a byte that is not UTF-8 as
/// `\xNN`. A plain name is shown byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct NameDisplay<'a>(pub &'a [u8]);

impl std::fmt::Display for NameDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() && c.is_ascii() => write!(f, "\\x{:02x}", u32::from(c))?,
                    c if c.is_control() => write!(f, "\\u{{{:04x}}}", u32::from(c))?,
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::NameDisplay;

    #[test]
    fn names_are_escaped_for_logs_and_terminals() {
        let show = |b: &[u8]| {
            use std::fmt::Write as _;
            let mut s = String::new();
            write!(s, "{}", NameDisplay(b)).unwrap();
            s
        };
        assert_eq!(show(b"testcluster"), "testcluster");
        assert_eq!(
            show("caf\u{e9} \u{1F600}".as_bytes()),
            "caf\u{e9} \u{1F600}"
        );
        assert_eq!(
            show(b"a\nclient connected cluster=b"),
            "a\\x0aclient connected cluster=b"
        );
        assert_eq!(show(b"\x1b[2J\x07"), "\\x1b[2J\\x07");
        assert_eq!(show(b"a\\b"), "a\\\\b");
        assert_eq!(show("\u{9b}31m".as_bytes()), "\\u{009b}31m");
        assert_eq!(show(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(show(b"x\0y"), "x\\x00y");
    }
}
