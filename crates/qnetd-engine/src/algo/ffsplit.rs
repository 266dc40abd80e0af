//! The `ffsplit` (fifty-fifty split) algorithm (`qdevices/qnetd-algo-ffsplit.c`).
//!
//! Made for even node counts with one vote per node and one qdevice vote:
//! the vote goes to exactly one partition, and votes change in a safe order.
//! Every run first sends NACK to the clients that lose the vote, waits for
//! all their VOTE_INFO_REPLYs, and only then sends ACK to the winners.
//!
//! Partitions are compared by size; a 50:50 split by score (connected
//! clients + heuristics passes − fails), then by connected clients, then by
//! the keep-active-partition tie-breaker (when every client enables it),
//! and last by the tie-breaker node.

use super::model::{Action, Cluster, FfsplitClientState, FfsplitClusterState, Member, in_list};
use super::{Buffers, Event};
use crate::proto::{Heuristics, NodeInfo, ReplyErrorCode, RingId, TieBreakerMode, Vote};

/// The client whose message triggered a run, and the values that replace
/// its stored ones for this run. `None` means "use the stored list".
#[derive(Debug, Clone, Copy)]
struct Input<'m> {
    /// Index of the triggering member.
    client: usize,
    /// The triggering client is disconnecting: leave it out.
    leaving: bool,
    ring_id: RingId,
    config: Option<&'m [NodeInfo]>,
    membership: Option<&'m [NodeInfo]>,
    heuristics: Heuristics,
}

impl Input<'_> {
    /// The member at `client` as stored: no new lists, not leaving.
    fn stored(client: usize, c: &Member) -> Self {
        Input {
            client,
            leaving: false,
            ring_id: c.ring_id,
            config: None,
            membership: None,
            heuristics: c.heuristics,
        }
    }
}

/// What the algorithm sees of one member: the stored values, or for the
/// triggering member the new ones.
#[derive(Debug, Clone, Copy)]
struct View<'a> {
    node_id: u32,
    config: &'a [NodeInfo],
    membership: &'a [NodeInfo],
    ring_id: RingId,
    heuristics: Heuristics,
}

fn view<'a>(members: &'a [Member], i: usize, input: &Input<'a>) -> Option<View<'a>> {
    let m = members.get(i)?;
    Some(if i == input.client {
        View {
            node_id: m.node_id,
            config: input.config.unwrap_or(&m.config_list),
            membership: input.membership.unwrap_or(&m.membership_list),
            ring_id: input.ring_id,
            heuristics: input.heuristics,
        }
    } else {
        View {
            node_id: m.node_id,
            config: &m.config_list,
            membership: &m.membership_list,
            ring_id: m.ring_id,
            heuristics: m.heuristics,
        }
    })
}

/// Indices of the members taking part in a run (all but a leaving client).
fn participants(members: &[Member], input: &Input<'_>) -> impl Iterator<Item = usize> + use<> {
    let skip = input.leaving.then_some(input.client);
    (0..members.len()).filter(move |&i| Some(i) != skip)
}

/// Reusable buffers of the stability check. One set serves every cluster
/// (the instance owns it and runs one cluster at a time), so that a run
/// allocates nothing once they have grown to the largest cluster's size,
/// and an idle cluster costs no memory for them.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    /// Sorted, deduplicated node ids of every participant's membership
    /// list, one after the other.
    ids: Vec<u32>,
    /// `(start, len)` in `ids` per member index.
    spans: Vec<(usize, usize)>,
    /// Member indices ordered by (ring id, membership set).
    order: Vec<usize>,
    /// Equivalence class of (ring id, membership set) per member index.
    class: Vec<usize>,
    /// Sorted, deduplicated configuration of the first participant, and of
    /// the one being compared with it.
    config_first: Vec<u32>,
    config_other: Vec<u32>,
}

/// Writes the sorted, deduplicated node ids of `list` to the end of `out`,
/// counting the work.
fn push_sorted_ids(out: &mut Vec<u32>, list: &[NodeInfo], work: &mut u64) -> (usize, usize) {
    let start = out.len();
    out.extend(list.iter().map(|n| n.node_id));
    let tail = out.get_mut(start..).unwrap_or_default();
    let mut comparisons = 0u64;
    tail.sort_unstable_by(|a, b| {
        comparisons += 1;
        a.cmp(b)
    });
    *work += comparisons + list.len() as u64;
    let mut len = 0;
    for k in 0..tail.len() {
        if len == 0 || tail.get(k) != tail.get(len - 1) {
            tail.swap(len, k);
            len += 1;
        }
    }
    out.truncate(start + len);
    (start, len)
}

/// Mirrors `qnetd_algo_ffsplit_is_membership_stable`, in
/// O(m·l·log(m·l)) for m members with lists of l nodes instead of the
/// reference's O(m²·l²).
///
/// (a) Every participant has the same configuration, as a set.
///
/// (b) The reference requires, for every participant `a` and every
/// connected participant `b` named in `a`'s membership list, equal ring ids
/// and `a`'s list ⊆ `b`'s list. A stored or incoming membership list always
/// holds the member's own node id (the handlers refuse any other), so `a ∈ a
/// ⊆ b` names `a` in `b`'s list, and the same check from `b`'s side gives
/// `b ⊆ a`: the condition is that both have the same (ring id, membership
/// set). Participants are therefore sorted once into classes of equal
/// (ring id, set) and each pair costs one comparison of class numbers.
/// `tests` below compare this with the reference's pairwise check.
fn is_membership_stable(
    members: &[Member],
    input: &Input<'_>,
    scratch: &mut Scratch,
    work: &mut u64,
) -> bool {
    let Scratch {
        ids,
        spans,
        order,
        class,
        config_first,
        config_other,
    } = scratch;
    // (a)
    let mut parts = participants(members, input);
    if let Some(first) = parts.next().and_then(|i| view(members, i, input)) {
        config_first.clear();
        push_sorted_ids(config_first, first.config, work);
        for j in parts {
            let Some(b) = view(members, j, input) else {
                return false;
            };
            config_other.clear();
            push_sorted_ids(config_other, b.config, work);
            *work += config_first.len().min(config_other.len()) as u64 + 1;
            if config_first != config_other {
                return false;
            }
        }
    }
    // (b) Classes of equal (ring id, membership set).
    ids.clear();
    spans.clear();
    order.clear();
    class.clear();
    for i in 0..members.len() {
        let span = match view(members, i, input) {
            Some(v) if !(input.leaving && i == input.client) => {
                order.push(i);
                push_sorted_ids(ids, v.membership, work)
            }
            _ => (0, 0),
        };
        spans.push(span);
        class.push(usize::MAX);
    }
    let ring = |i: usize| view(members, i, input).map(|v| (v.ring_id.node_id, v.ring_id.seq));
    let set = |i: usize| {
        let (start, len) = spans.get(i).copied().unwrap_or_default();
        ids.get(start..start + len).unwrap_or_default()
    };
    let mut comparisons = 0u64;
    order.sort_unstable_by(|&x, &y| {
        comparisons += 1 + set(x).len().min(set(y).len()) as u64;
        ring(x).cmp(&ring(y)).then_with(|| set(x).cmp(set(y)))
    });
    *work += comparisons;
    let mut next_class = 0;
    for k in 0..order.len() {
        let (Some(&i), prev) = (order.get(k), k.checked_sub(1).and_then(|p| order.get(p))) else {
            continue;
        };
        if let Some(&p) = prev {
            *work += 1 + set(i).len() as u64;
            if ring(i) != ring(p) || set(i) != set(p) {
                next_class += 1;
            }
        }
        if let Some(c) = class.get_mut(i) {
            *c = next_class;
        }
    }
    // Every connected participant named in a participant's list must be
    // in its class.
    for &i in order.iter() {
        let (Some(a), Some(&ca)) = (view(members, i, input), class.get(i)) else {
            return false;
        };
        for n in a.membership {
            *work += 1 + u64::from(members.len().max(1).ilog2());
            let Ok(j) = members.binary_search_by_key(&n.node_id, |m| m.node_id) else {
                continue;
            };
            if input.leaving && j == input.client {
                continue;
            }
            if class.get(j) != Some(&ca) {
                return false;
            }
        }
    }
    true
}

/// Connected clients of a partition and their heuristics results
/// (`qnetd_algo_ffsplit_get_active_clients_in_partition_stats`). The
/// partition's own client counts with its view heuristics, every other
/// client with its stored ones. A leaving client still counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    active: usize,
    pass: usize,
    fail: usize,
}

impl Stats {
    fn of(members: &[Member], owner: Option<&View<'_>>) -> Self {
        let mut s = Self::default();
        let Some(owner) = owner else { return s };
        for n in owner.membership {
            let Ok(idx) = members.binary_search_by_key(&n.node_id, |m| m.node_id) else {
                continue;
            };
            let Some(m) = members.get(idx) else {
                continue;
            };
            s.active += 1;
            let h = if m.node_id == owner.node_id {
                owner.heuristics
            } else {
                m.heuristics
            };
            match h {
                Heuristics::Pass => s.pass += 1,
                Heuristics::Fail => s.fail += 1,
                Heuristics::Undefined | Heuristics::Unknown(_) => {}
            }
        }
        s
    }

    /// `active + pass - fail`; `fail <= active`, so this never underflows.
    fn score(self) -> usize {
        (self.active + self.pass).saturating_sub(self.fail)
    }
}

/// Whether the tie-breaker prefers `x`'s partition
/// (`qnetd_algo_ffsplit_is_preferred_partition`). An empty configuration
/// list prefers nothing (the reference would dereference a null pointer).
fn is_preferred(member: &Member, x: &View<'_>) -> bool {
    let preferred = match member.tie_breaker.mode {
        TieBreakerMode::Lowest => x.config.iter().map(|n| n.node_id).min(),
        TieBreakerMode::Highest => x.config.iter().map(|n| n.node_id).max(),
        TieBreakerMode::NodeId => Some(member.tie_breaker.node_id),
        TieBreakerMode::Unknown(_) => None,
    };
    preferred.is_some_and(|id| in_list(x.membership, id))
}

/// Whether partition `x` beats the best so far, `best`
/// (`qnetd_algo_ffsplit_partition_cmp`).
fn is_better(
    members: &[Member],
    x_member: &Member,
    x: &View<'_>,
    best: Option<&View<'_>>,
    quorate_partition: &[u32],
    keep_active_partition: bool,
) -> bool {
    let n = x.config.len();
    let m = x.membership.len();
    let half = n / 2;
    if n % 2 == 1 {
        // Odd clusters never split 50:50; the best so far is not consulted.
        return m > half;
    }
    if m != half {
        return m > half;
    }
    let xs = Stats::of(members, Some(x));
    let bs = Stats::of(members, best);
    if xs.score() != bs.score() {
        return xs.score() > bs.score();
    }
    if xs.active != bs.active {
        return xs.active > bs.active;
    }
    if let (true, Some(b)) = (keep_active_partition, best) {
        let x_in = quorate_partition.contains(&x.node_id);
        let b_in = quorate_partition.contains(&b.node_id);
        if x_in != b_in {
            return x_in;
        }
    }
    is_preferred(x_member, x)
}

/// Index of the member whose membership list becomes the quorate partition
/// (`qnetd_algo_ffsplit_select_partition`).
///
/// Linear in the cluster's state: per participant, two partition
/// statistics (a binary search per listed node), the tie-breaker (one pass
/// over its lists) and, with KAP, two scans of the previous partition.
fn select_partition(
    members: &[Member],
    input: &Input<'_>,
    quorate_partition: &[u32],
    work: &mut u64,
) -> Option<usize> {
    let keep_active_partition = members.iter().all(|m| m.keep_active_partition_tie_breaker);
    let search = 1 + u64::from(members.len().max(1).ilog2());
    let mut best: Option<(usize, View<'_>)> = None;
    for i in participants(members, input) {
        let (Some(x), Some(x_member)) = (view(members, i, input), members.get(i)) else {
            continue;
        };
        let best_view = best.as_ref().map(|(_, v)| v);
        *work += 1
            + (x.membership.len() + best_view.map_or(0, |b| b.membership.len())) as u64 * search
            + (x.config.len() + x.membership.len() + 2 * quorate_partition.len()) as u64;
        if is_better(
            members,
            x_member,
            &x,
            best_view,
            quorate_partition,
            keep_active_partition,
        ) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

/// Starts the ACK round: every NACK was sent and confirmed, or there was
/// none; with no ACK to send the cluster waits for the next change.
fn send_acks(cluster: &mut Cluster, input: &Input<'_>, actions: &mut Vec<Action>) {
    cluster.ffsplit_state = FfsplitClusterState::SendingAcks;
    if send_votes(cluster, input, Vote::Ack, actions) == 0 {
        log::debug!("ffsplit: No client gets ACK");
        cluster.ffsplit_state = FfsplitClusterState::WaitingForChange;
    }
}

/// Queues `vote` for every participant in the matching sending state and
/// returns how many were queued (`qnetd_algo_ffsplit_send_votes`).
fn send_votes(
    cluster: &mut Cluster,
    input: &Input<'_>,
    vote: Vote,
    actions: &mut Vec<Action>,
) -> usize {
    let wanted = if vote == Vote::Ack {
        FfsplitClientState::SendingAck
    } else {
        FfsplitClientState::SendingNack
    };
    let mut sent = 0;
    for (i, m) in cluster.members.iter_mut().enumerate() {
        if input.leaving && i == input.client {
            continue;
        }
        if m.ffsplit_state != wanted {
            continue;
        }
        let ring_id = if i == input.client {
            input.ring_id
        } else {
            m.ring_id
        };
        m.vote_info_expected_seq = m.vote_info_expected_seq.wrapping_add(1);
        actions.push(Action::VoteInfo {
            node_id: m.node_id,
            seq: m.vote_info_expected_seq,
            vote,
            ring_id,
        });
        sent += 1;
    }
    sent
}

fn sending_count(cluster: &Cluster, state: FfsplitClientState) -> usize {
    cluster
        .members
        .iter()
        .filter(|m| m.ffsplit_state == state)
        .count()
}

/// One decision round (`qnetd_algo_ffsplit_do`).
fn run(cluster: &mut Cluster, input: &Input<'_>, buffers: &mut Buffers) -> Vote {
    cluster.ffsplit_state = FfsplitClusterState::WaitingForStableMembership;
    if !is_membership_stable(
        &cluster.members,
        input,
        &mut buffers.ffsplit,
        &mut cluster.ffsplit_work,
    ) {
        log::debug!(
            "ffsplit: Membership for cluster {} is not yet stable",
            cluster.display_name()
        );
        return Vote::WaitForReply;
    }
    log::debug!(
        "ffsplit: Membership for cluster {} is now stable",
        cluster.display_name()
    );

    let best = select_partition(
        &cluster.members,
        input,
        &cluster.quorate_partition,
        &mut cluster.ffsplit_work,
    );
    {
        let Cluster {
            members,
            quorate_partition,
            ffsplit_work,
            ..
        } = &mut *cluster;
        quorate_partition.clear();
        match best.and_then(|i| view(members, i, input)) {
            Some(v) => {
                quorate_partition.extend(v.membership.iter().map(|n| n.node_id));
                log::debug!("ffsplit: Quorate partition selected: {quorate_partition:?}");
            }
            None => log::debug!("ffsplit: No quorate partition was selected"),
        }
        // qnetd_algo_ffsplit_update_nodes_state
        *ffsplit_work += (members.len() * (1 + quorate_partition.len())) as u64;
        for (i, m) in members.iter_mut().enumerate() {
            m.ffsplit_state = if input.leaving && i == input.client {
                FfsplitClientState::WaitingForChange
            } else if best.is_some() && quorate_partition.contains(&m.node_id) {
                FfsplitClientState::SendingAck
            } else {
                FfsplitClientState::SendingNack
            };
        }
    }

    cluster.ffsplit_state = FfsplitClusterState::SendingNacks;
    if send_votes(cluster, input, Vote::Nack, &mut buffers.actions) == 0 {
        log::debug!("ffsplit: No client gets NACK");
        send_acks(cluster, input, &mut buffers.actions);
    }
    Vote::NoChange
}

/// Mirrors the `qnetd_algo_ffsplit_*_received` callbacks.
///
/// # Errors
/// INVALID_CONFIG_NODE_LIST / INVALID_MEMBERSHIP_NODE_LIST for a list that
/// is empty or lacks the client's own node; ASK_FOR_VOTE is not supported.
pub fn handle(
    cluster: &mut Cluster,
    idx: usize,
    event: Event<'_>,
    buffers: &mut Buffers,
) -> Result<Vote, ReplyErrorCode> {
    let Some(c) = cluster.members.get(idx) else {
        return Err(ReplyErrorCode::InternalError);
    };
    let base = Input::stored(idx, c);
    match event {
        Event::ConfigList { list, initial } => {
            if list.is_empty() || !in_list(list, c.node_id) {
                log::error!(
                    "ffsplit: Received config node list without client (node_id {})",
                    c.node_id
                );
                return Err(ReplyErrorCode::InvalidConfigNodeList);
            }
            if initial || c.membership_list.is_empty() {
                return Ok(Vote::AskLater);
            }
            let input = Input {
                config: Some(list),
                ..base
            };
            Ok(run(cluster, &input, buffers))
        }
        Event::MembershipList {
            ring_id,
            list,
            heuristics,
        } => {
            if list.is_empty() || !in_list(list, c.node_id) {
                log::error!(
                    "ffsplit: Received membership node list without client (node_id {})",
                    c.node_id
                );
                return Err(ReplyErrorCode::InvalidMembershipNodeList);
            }
            if c.config_list.is_empty() {
                return Ok(Vote::AskLater);
            }
            let input = Input {
                ring_id,
                membership: Some(list),
                heuristics,
                ..base
            };
            Ok(run(cluster, &input, buffers))
        }
        Event::QuorumList => Ok(Vote::NoChange),
        Event::HeuristicsChange { heuristics } => {
            if c.config_list.is_empty() || c.membership_list.is_empty() {
                return Ok(Vote::AskLater);
            }
            Ok(run(cluster, &Input { heuristics, ..base }, buffers))
        }
        Event::AskForVote => Err(ReplyErrorCode::UnsupportedDecisionAlgorithmMessage),
        Event::VoteInfoReply { seq } => {
            vote_info_reply(cluster, idx, seq, &mut buffers.actions);
            Ok(Vote::Undefined)
        }
        Event::Disconnect { server_going_down } => {
            if !server_going_down {
                run(
                    cluster,
                    &Input {
                        leaving: true,
                        ..base
                    },
                    buffers,
                );
            }
            Ok(Vote::Undefined)
        }
        Event::Timer => Ok(Vote::Undefined),
    }
}

/// Mirrors `qnetd_algo_ffsplit_vote_info_reply_received`.
fn vote_info_reply(cluster: &mut Cluster, idx: usize, seq: u32, actions: &mut Vec<Action>) {
    let Some(c) = cluster.members.get_mut(idx) else {
        return;
    };
    if c.vote_info_expected_seq != seq {
        log::debug!(
            "ffsplit: Received old vote info reply from node_id {}",
            c.node_id
        );
        return;
    }
    c.ffsplit_state = FfsplitClientState::WaitingForChange;
    let input = Input::stored(idx, c);
    match cluster.ffsplit_state {
        FfsplitClusterState::SendingNacks => {
            if sending_count(cluster, FfsplitClientState::SendingNack) == 0 {
                log::debug!(
                    "ffsplit: All NACK votes sent for cluster {}",
                    cluster.display_name()
                );
                send_acks(cluster, &input, actions);
            }
        }
        FfsplitClusterState::SendingAcks => {
            if sending_count(cluster, FfsplitClientState::SendingAck) == 0 {
                log::debug!(
                    "ffsplit: All ACK votes sent for cluster {}",
                    cluster.display_name()
                );
                cluster.ffsplit_state = FfsplitClusterState::WaitingForChange;
            }
        }
        FfsplitClusterState::WaitingForChange | FfsplitClusterState::WaitingForStableMembership => {
        }
    }
}

#[cfg(test)]
mod tests;
