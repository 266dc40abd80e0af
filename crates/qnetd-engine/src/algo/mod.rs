//! The decision algorithms: `test`, `ffsplit`, `2nodelms` and `lms`.
//!
//! Pure logic over a [`Cluster`]: no I/O, no clock, no allocation once the
//! cluster's vectors have grown to their working size. Each algorithm is a
//! set of callbacks mirroring the reference's function table
//! (`struct qnetd_algorithm`, `qdevices/qnetd-algorithm.h`), dispatched by
//! [`handle`] on the cluster's algorithm.
//!
//! # Order of operations
//!
//! A callback runs **before** the client's stored state is updated with the
//! message that triggered it: the new values arrive in the [`Event`], while
//! the [`Member`] still holds the previous ones. lms depends on this.
//!
//! A callback returns the vote for the reply, or the error code for a
//! SERVER_ERROR, and pushes [`Action`]s (VOTE_INFOs for any member, timer
//! changes) that the core carries out in order, before the reply.

pub mod ffsplit;
pub mod lms;
pub mod model;
pub mod test;
pub mod two_node_lms;

pub use model::{Action, Cluster, FfsplitClientState, FfsplitClusterState, Member, store_list};

use crate::proto::{DecisionAlgorithm, Heuristics, NodeInfo, ReplyErrorCode, RingId, Vote};

/// The message or event an algorithm reacts to.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A configuration node list (initial or changed).
    ConfigList {
        /// The nodes.
        list: &'a [NodeInfo],
        /// Initial (first after connecting) or changed.
        initial: bool,
    },
    /// A membership node list.
    MembershipList {
        /// Its ring id.
        ring_id: RingId,
        /// The nodes.
        list: &'a [NodeInfo],
        /// Its heuristics (Undefined when absent).
        heuristics: Heuristics,
    },
    /// A quorum node list.
    QuorumList,
    /// ASK_FOR_VOTE.
    AskForVote,
    /// VOTE_INFO_REPLY with its sequence number.
    VoteInfoReply {
        /// The echoed sequence number.
        seq: u32,
    },
    /// HEURISTICS_CHANGE.
    HeuristicsChange {
        /// The new regular heuristics result.
        heuristics: Heuristics,
    },
    /// The member's algorithm timer fired.
    Timer,
    /// The member's client is going away (still in the cluster).
    Disconnect {
        /// The whole server is shutting down.
        server_going_down: bool,
    },
}

/// Whether the server can run `algorithm` (INIT refuses the others with
/// UNSUPPORTED_DECISION_ALGORITHM).
#[must_use]
pub const fn is_supported(algorithm: DecisionAlgorithm) -> bool {
    matches!(
        algorithm,
        DecisionAlgorithm::Test
            | DecisionAlgorithm::Ffsplit
            | DecisionAlgorithm::TwoNodeLms
            | DecisionAlgorithm::Lms
    )
}

/// What an algorithm run writes into, owned by the caller (the instance)
/// and reused by every cluster, one run at a time: the actions to carry
/// out, and ffsplit's stability-check buffers. A run allocates nothing once
/// they have grown to the largest cluster's size.
#[derive(Debug, Default)]
pub struct Buffers {
    /// The actions of the last run, in order.
    pub actions: Vec<Action>,
    ffsplit: ffsplit::Scratch,
}

/// Runs the callback of the member at `idx` for `event`; its actions are
/// appended to `buffers.actions`.
///
/// Returns the vote for the reply (meaningless for VOTE_INFO_REPLY and
/// disconnects; for the timer, an ACK or NACK is to be sent as VOTE_INFO).
///
/// # Errors
/// The reply code of a SERVER_ERROR, as the reference algorithm returns it.
pub fn handle(
    cluster: &mut Cluster,
    idx: usize,
    event: Event<'_>,
    buffers: &mut Buffers,
) -> Result<Vote, ReplyErrorCode> {
    let Some(member) = cluster.members.get(idx) else {
        return Err(ReplyErrorCode::InternalError);
    };
    match member.algorithm {
        DecisionAlgorithm::Test => Ok(test::handle(&event)),
        DecisionAlgorithm::Ffsplit => ffsplit::handle(cluster, idx, event, buffers),
        DecisionAlgorithm::TwoNodeLms => two_node_lms::handle(cluster, idx, event),
        DecisionAlgorithm::Lms => Ok(lms::handle(cluster, idx, event, &mut buffers.actions)),
        DecisionAlgorithm::Unknown(_) => Err(ReplyErrorCode::InternalError),
    }
}
