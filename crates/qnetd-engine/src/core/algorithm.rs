//! The algorithm glue (`qdevices/qnetd-algorithm.c`, `qnetd-algo-timer.c`):
//! runs a decision algorithm on a member's cluster and carries out what it
//! asks for (VOTE_INFOs, timer changes), and records the votes sent.

use super::client::ClientId;
use super::instance::Instance;
use super::msgio::server_error;
use super::time::Timestamp;
use super::timers::TimerKind;
use crate::algo::{self, Action};
use crate::proto::{Msg, MsgType, ReplyErrorCode, RingId, Vote};

impl Instance {
    /// The cluster slot and member index of an initialised client.
    pub(super) fn member_of(&self, id: ClientId) -> Option<(usize, usize)> {
        let client = self.client(id)?;
        let slot = client.cluster?;
        let idx = self.clusters.get(slot)?.position(client.node_id)?;
        Some((slot, idx))
    }

    /// Runs an algorithm callback and carries out its actions.
    pub(super) fn run_algorithm(
        &mut self,
        now: Timestamp,
        cluster_slot: usize,
        member_idx: usize,
        event: algo::Event<'_>,
    ) -> Result<Vote, ReplyErrorCode> {
        let mut buffers = core::mem::take(&mut self.algo_buffers);
        buffers.actions.clear();
        let result = match self.clusters.get_mut(cluster_slot) {
            Some(cluster) => algo::handle(cluster, member_idx, event, &mut buffers),
            None => Err(ReplyErrorCode::InternalError),
        };
        for action in &buffers.actions {
            self.apply(now, cluster_slot, *action);
        }
        self.algo_buffers = buffers;
        result
    }

    pub(super) fn apply(&mut self, now: Timestamp, cluster_slot: usize, action: Action) {
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
    pub(super) fn send_vote_info(
        &mut self,
        cluster_slot: usize,
        node_id: u32,
        seq: u32,
        vote: Vote,
        ring_id: RingId,
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
    pub(super) fn record_reply_vote(&mut self, cluster_slot: usize, member_idx: usize, vote: Vote) {
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

    /// Runs the algorithm for a client's message. On an error code the
    /// client gets SERVER_ERROR with it and `None` comes back; otherwise the
    /// vote for the reply.
    pub(super) fn decide(
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

    /// Sends a reply carrying the vote and the member's stored ring id
    /// (NODE_LIST_REPLY, ASK_FOR_VOTE_REPLY, HEURISTICS_CHANGE_REPLY) and
    /// records the vote.
    pub(super) fn send_vote_reply(
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

    /// The algorithm timer fired (`qnetd_client_algo_timer_callback`).
    pub(super) fn on_algo_timer(&mut self, now: Timestamp, id: ClientId) {
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
}
