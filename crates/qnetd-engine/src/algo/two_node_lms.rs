//! The `2nodelms` algorithm (`qdevices/qnetd-algo-2nodelms.c`): last man
//! standing for clusters of exactly two nodes. Votes go out directly in the
//! NODE_LIST_REPLY; there is no VOTE_INFO and no timer.

use super::Event;
use super::model::{Cluster, Member};
use crate::proto::{Heuristics, ReplyErrorCode, RingId, TieBreakerMode, Vote};

fn store(members: &mut [Member], idx: usize, vote: Vote) -> Vote {
    if let Some(m) = members.get_mut(idx) {
        m.last_result = vote;
    }
    vote
}

/// Mirrors `qnetd_algo_2nodelms_membership_node_list_received`.
fn membership(
    members: &mut [Member],
    idx: usize,
    ring_id: RingId,
    list_len: usize,
    heuristics: Heuristics,
) -> Vote {
    let Some(c) = members.get(idx) else {
        return Vote::Undefined;
    };
    // A newcomer must not take the vote from an already active node.
    if c.last_result == Vote::Undefined
        && members
            .iter()
            .any(|x| x.ring_id != ring_id && x.last_result == Vote::Ack)
    {
        log::debug!(
            "algo-2nodelms: we are a new partition and another active partition exists. NACK"
        );
        return Vote::Nack;
    }
    if list_len == 2 {
        return store(members, idx, Vote::Ack);
    }
    let low = members.iter().map(|m| m.node_id).min().unwrap_or(u32::MAX);
    let high = members.iter().map(|m| m.node_id).max().unwrap_or(0);
    // Heuristics of the last other client in node-id order.
    let other = members
        .iter()
        .rfind(|m| m.node_id != c.node_id)
        .map_or(Heuristics::Undefined, |m| m.heuristics);
    if members.len() == 1 {
        log::debug!(
            "algo-2nodelms: running on 'last-man' (node_id {})",
            c.node_id
        );
        return store(members, idx, Vote::Ack);
    }
    if heuristics.rank() != other.rank() {
        let vote = if heuristics.rank() > other.rank() {
            Vote::Ack
        } else {
            Vote::Nack
        };
        return store(members, idx, vote);
    }
    let ours = match c.tie_breaker.mode {
        TieBreakerMode::Lowest => c.node_id == low,
        TieBreakerMode::Highest => c.node_id == high,
        TieBreakerMode::NodeId => c.node_id == c.tie_breaker.node_id,
        TieBreakerMode::Unknown(_) => false,
    };
    store(members, idx, if ours { Vote::Ack } else { Vote::Nack })
}

/// Mirrors the `qnetd_algo_2nodelms_*` callbacks.
///
/// # Errors
/// UNSUPPORTED_DECISION_ALGORITHM for a configuration list that does not
/// have exactly two nodes.
pub fn handle(cluster: &mut Cluster, idx: usize, event: Event<'_>) -> Result<Vote, ReplyErrorCode> {
    match event {
        Event::ConfigList { list, .. } => {
            if list.len() == 2 {
                Ok(Vote::NoChange)
            } else {
                log::info!(
                    "algo-2nodelms: cluster {} does not have 2 configured nodes, it has {}",
                    cluster.display_name(),
                    list.len()
                );
                Err(ReplyErrorCode::UnsupportedDecisionAlgorithm)
            }
        }
        Event::MembershipList {
            ring_id,
            list,
            heuristics,
        } => Ok(membership(
            &mut cluster.members,
            idx,
            ring_id,
            list.len(),
            heuristics,
        )),
        Event::QuorumList => Ok(Vote::NoChange),
        Event::HeuristicsChange { .. } => {
            log::info!("algo-2nodelms: heuristics change is not supported.");
            Ok(Vote::NoChange)
        }
        Event::AskForVote => {
            Ok(cluster
                .members
                .get(idx)
                .map_or(Vote::AskLater, |m| match m.last_result {
                    Vote::Undefined => Vote::AskLater,
                    v => v,
                }))
        }
        Event::VoteInfoReply { .. } | Event::Timer | Event::Disconnect { .. } => {
            Ok(Vote::Undefined)
        }
    }
}
