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

use super::Event;
use super::model::{Action, Cluster, FfsplitClientState, FfsplitClusterState, Member, in_list};
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

/// Mirrors `qnetd_algo_ffsplit_is_membership_stable`.
fn is_membership_stable(members: &[Member], input: &Input<'_>) -> bool {
    // (a) All participants share the same configuration (as sets). The
    // reference checks every ordered pair; comparing each list with the
    // first one both ways is equivalent and linear in the cluster size.
    let mut parts = participants(members, input);
    if let Some(first) = parts.next().and_then(|i| view(members, i, input)) {
        for j in parts {
            let Some(b) = view(members, j, input) else {
                return false;
            };
            let subset = |x: &[NodeInfo], y: &[NodeInfo]| x.iter().all(|n| in_list(y, n.node_id));
            if !subset(first.config, b.config) || !subset(b.config, first.config) {
                return false;
            }
        }
    }
    // (b) Connected members of one membership agree on ring id and members.
    for i in participants(members, input) {
        let Some(a) = view(members, i, input) else {
            return false;
        };
        for n in a.membership {
            let Some(j) = members.iter().position(|m| m.node_id == n.node_id) else {
                continue;
            };
            if input.leaving && j == input.client {
                continue;
            }
            let Some(b) = view(members, j, input) else {
                return false;
            };
            if a.ring_id != b.ring_id {
                return false;
            }
            if a.membership
                .iter()
                .any(|x| !in_list(b.membership, x.node_id))
            {
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
            let Some(m) = members.iter().find(|m| m.node_id == n.node_id) else {
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
fn select_partition(
    members: &[Member],
    input: &Input<'_>,
    quorate_partition: &[u32],
) -> Option<usize> {
    let keep_active_partition = members.iter().all(|m| m.keep_active_partition_tie_breaker);
    let mut best: Option<(usize, View<'_>)> = None;
    for i in participants(members, input) {
        let (Some(x), Some(x_member)) = (view(members, i, input), members.get(i)) else {
            continue;
        };
        let best_view = best.as_ref().map(|(_, v)| v);
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
fn run(cluster: &mut Cluster, input: &Input<'_>, actions: &mut Vec<Action>) -> Vote {
    cluster.ffsplit_state = FfsplitClusterState::WaitingForStableMembership;
    if !is_membership_stable(&cluster.members, input) {
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

    let best = select_partition(&cluster.members, input, &cluster.quorate_partition);
    {
        let Cluster {
            members,
            quorate_partition,
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
    if send_votes(cluster, input, Vote::Nack, actions) == 0 {
        log::debug!("ffsplit: No client gets NACK");
        cluster.ffsplit_state = FfsplitClusterState::SendingAcks;
        if send_votes(cluster, input, Vote::Ack, actions) == 0 {
            log::debug!("ffsplit: No client gets ACK");
            cluster.ffsplit_state = FfsplitClusterState::WaitingForChange;
        }
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
    actions: &mut Vec<Action>,
) -> Result<Vote, ReplyErrorCode> {
    let Some(c) = cluster.members.get(idx) else {
        return Err(ReplyErrorCode::InternalError);
    };
    let base = Input {
        client: idx,
        leaving: false,
        ring_id: c.ring_id,
        config: None,
        membership: None,
        heuristics: c.heuristics,
    };
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
            Ok(run(cluster, &input, actions))
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
            Ok(run(cluster, &input, actions))
        }
        Event::QuorumList => Ok(Vote::NoChange),
        Event::HeuristicsChange { heuristics } => {
            if c.config_list.is_empty() || c.membership_list.is_empty() {
                return Ok(Vote::AskLater);
            }
            Ok(run(cluster, &Input { heuristics, ..base }, actions))
        }
        Event::AskForVote => Err(ReplyErrorCode::UnsupportedDecisionAlgorithmMessage),
        Event::VoteInfoReply { seq } => {
            vote_info_reply(cluster, idx, seq, actions);
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
                    actions,
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
    let input = Input {
        client: idx,
        leaving: false,
        ring_id: c.ring_id,
        config: None,
        membership: None,
        heuristics: c.heuristics,
    };
    match cluster.ffsplit_state {
        FfsplitClusterState::SendingNacks => {
            if sending_count(cluster, FfsplitClientState::SendingNack) == 0 {
                log::debug!(
                    "ffsplit: All NACK votes sent for cluster {}",
                    cluster.display_name()
                );
                cluster.ffsplit_state = FfsplitClusterState::SendingAcks;
                if send_votes(cluster, &input, Vote::Ack, actions) == 0 {
                    log::debug!("ffsplit: No client gets ACK");
                    cluster.ffsplit_state = FfsplitClusterState::WaitingForChange;
                }
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
