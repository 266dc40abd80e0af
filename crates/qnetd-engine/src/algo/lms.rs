//! The `lms` (last man standing) algorithm (`qdevices/qnetd-algo-lms.c`,
//! helpers in `qdevices/qnetd-algo-utils.c`).
//!
//! The qdevice vote goes to the partition with the highest score (connected
//! clients + heuristics passes − fails), then the largest partition, then
//! the partition of the tie-breaker node. A partition is the set of clients
//! sharing a ring id. While clients of the same membership still disagree
//! on the ring id, the answer is WAIT_FOR_REPLY and the algorithm timer
//! (heartbeat / 4) retries; the timer sends the eventual ACK or NACK as a
//! VOTE_INFO.

use super::Event;
use super::model::{Action, Cluster, Member, in_list};
use crate::proto::{Heuristics, RingId, TieBreakerMode, Vote};

/// A group of clients with the same stored ring id
/// (`struct qnetd_algo_partition`).
#[derive(Debug, Clone, Copy)]
struct Partition {
    ring_id: RingId,
    num_nodes: usize,
    score: i64,
}

/// Largest lowest-node tie-breaker start value: the reference starts from
/// `INT_MAX`, so node ids above it are never chosen.
const LOWEST_START: u32 = 0x7fff_ffff;

/// Whether every client of our membership already reports ring `ring_id`
/// (`qnetd_algo_all_ring_ids_match`). "Ours" uses the client's *stored*
/// membership list, or the other client's list containing us.
fn all_ring_ids_match(members: &[Member], c: &Member, ring_id: RingId) -> bool {
    members.iter().filter(|x| x.node_id != c.node_id).all(|x| {
        let in_our_partition =
            in_list(&c.membership_list, x.node_id) || in_list(&x.membership_list, c.node_id);
        !in_our_partition || x.ring_id == ring_id
    })
}

/// Visits the partitions in creation order (`qnetd_algo_create_partitions`):
/// clients grouped by stored ring id, skipping ring sequence 0 (not
/// initialised). Allocation-free: partitions are recomputed on the fly, as
/// a cluster has at most a handful of distinct ring ids.
fn partitions(members: &[Member]) -> impl Iterator<Item = Partition> + '_ {
    members.iter().enumerate().filter_map(move |(i, first)| {
        let ring_id = first.ring_id;
        if ring_id.seq == 0 {
            return None;
        }
        // A partition is created by its first client in node-id order.
        if members.get(..i)?.iter().any(|m| m.ring_id == ring_id) {
            return None;
        }
        let mut p = Partition {
            ring_id,
            num_nodes: 0,
            score: 0,
        };
        for m in members.iter().filter(|m| m.ring_id == ring_id) {
            p.num_nodes += 1;
            p.score += match m.heuristics {
                Heuristics::Pass => 2,
                Heuristics::Fail => 0,
                Heuristics::Undefined | Heuristics::Unknown(_) => 1,
            };
        }
        Some(p)
    })
}

/// The first partition with the greatest `key`, and whether another
/// partition shares that value (a "joint leader").
fn leader(members: &[Member], key: impl Fn(&Partition) -> i64) -> Option<(Partition, bool)> {
    let mut best: Option<Partition> = None;
    for p in partitions(members) {
        if best.is_none_or(|b| key(&b) < key(&p)) {
            best = Some(p);
        }
    }
    let best = best?;
    let joint = partitions(members).any(|p| p.ring_id != best.ring_id && key(&p) == key(&best));
    Some((best, joint))
}

fn store(members: &mut [Member], idx: usize, vote: Vote) -> Vote {
    if let Some(m) = members.get_mut(idx) {
        m.last_result = vote;
    }
    vote
}

/// The decision (`do_lms_algorithm`), for the member at `idx` in ring
/// `ring_id` (the new ring of a membership list, else the stored one).
fn decide(cluster: &mut Cluster, idx: usize, ring_id: RingId, actions: &mut Vec<Action>) -> Vote {
    let members = &mut cluster.members;
    let Some(c) = members.get(idx) else {
        return Vote::Undefined;
    };
    let node_id = c.node_id;
    actions.push(Action::StopTimer { node_id });

    if !all_ring_ids_match(members, c, ring_id) {
        log::debug!(
            "algo-lms: node_id {node_id}: ring id ({ring_id}) not unique in this membership, waiting"
        );
        actions.push(Action::StartTimer { node_id });
        return store(members, idx, Vote::WaitForReply);
    }

    let count = partitions(members).count();
    if count == 0 {
        log::debug!("algo-lms: No partitions found");
        actions.push(Action::StartTimer { node_id });
        return store(members, idx, Vote::WaitForReply);
    }
    if count == 1 {
        log::debug!("algo-lms: Only 1 partition. This is votequorum's problem, not ours");
        return store(members, idx, Vote::Ack);
    }

    // A newcomer must not take the vote from an already active partition.
    if c.last_result == Vote::Undefined
        && members
            .iter()
            .any(|x| x.ring_id != ring_id && x.last_result == Vote::Ack)
    {
        log::debug!("algo-lms: we are a new partition and another active partition exists. NACK");
        return Vote::Nack;
    }

    let ack_if_ours = |p: Partition| {
        if p.ring_id == ring_id {
            Vote::Ack
        } else {
            Vote::Nack
        }
    };
    if let Some((best, false)) = leader(members, |p| p.score) {
        log::debug!(
            "algo-lms: best score partition is ({}) with score {}",
            best.ring_id,
            best.score
        );
        return store(members, idx, ack_if_ours(best));
    }
    let size = |p: &Partition| i64::try_from(p.num_nodes).unwrap_or(i64::MAX);
    if let Some((largest, false)) = leader(members, size) {
        log::debug!(
            "algo-lms: largest partition is ({}) with {} nodes",
            largest.ring_id,
            largest.num_nodes
        );
        return store(members, idx, ack_if_ours(largest));
    }

    // Tie-breaker over all connected clients of the cluster.
    let tie_breaker = c.tie_breaker;
    let mut tb_node = 0u32;
    let mut tb_ring = RingId::default();
    match tie_breaker.mode {
        TieBreakerMode::Lowest => {
            tb_node = LOWEST_START;
            for x in members.iter() {
                if x.node_id < tb_node {
                    tb_node = x.node_id;
                    tb_ring = x.ring_id;
                }
            }
        }
        TieBreakerMode::Highest => {
            for x in members.iter() {
                if x.node_id > tb_node {
                    tb_node = x.node_id;
                    tb_ring = x.ring_id;
                }
            }
        }
        TieBreakerMode::NodeId => {
            tb_node = tie_breaker.node_id;
            // The reference remembers a ring only when we are the nominated
            // node (then it is the last client's); otherwise it stays 0.0.
            if tie_breaker.node_id == node_id
                && let Some(last) = members.last()
            {
                tb_ring = last.ring_id;
            }
        }
        TieBreakerMode::Unknown(_) => tb_node = u32::MAX,
    }
    let vote = if node_id == tb_node || tb_ring == ring_id {
        Vote::Ack
    } else {
        Vote::Nack
    };
    log::debug!("algo-lms: tie-breaker node id {tb_node} ({tb_ring}): {vote}");
    store(members, idx, vote)
}

/// Mirrors the `qnetd_algo_lms_*` callbacks.
pub fn handle(
    cluster: &mut Cluster,
    idx: usize,
    event: Event<'_>,
    actions: &mut Vec<Action>,
) -> Vote {
    let Some(c) = cluster.members.get(idx) else {
        return Vote::Undefined;
    };
    let stored_ring = c.ring_id;
    match event {
        Event::ConfigList { .. } => Vote::NoChange,
        Event::MembershipList { ring_id, .. } => decide(cluster, idx, ring_id, actions),
        Event::QuorumList | Event::AskForVote | Event::Timer => {
            decide(cluster, idx, stored_ring, actions)
        }
        Event::HeuristicsChange { .. } => {
            log::info!("algo-lms: heuristics change is not supported.");
            Vote::NoChange
        }
        Event::VoteInfoReply { .. } | Event::Disconnect { .. } => Vote::Undefined,
    }
}
