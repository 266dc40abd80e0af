//! The INIT procedure (`qnetd_client_msg_received_init` and
//! `qnetd_client_msg_received_init_check_new_client`): its checks in the
//! reference's error precedence, joining the cluster, and the reply.

use super::super::certname::cluster_name_matches;
use super::super::client::ClientId;
use super::super::instance::Instance;
use super::super::time::Timestamp;
use super::super::timers::TimerKind;
use super::{
    SUPPORTED_ALGORITHMS_BYTES, SUPPORTED_MESSAGES_BYTES, SUPPORTED_OPTIONS_BYTES, TlsCheck,
};
use crate::algo::{self, Member};
use crate::proto::types::MAX_NODES;
use crate::proto::{
    DecisionAlgorithm, Msg, MsgType, ReplyErrorCode, TieBreaker, TlsSupported, U16Array,
};

impl Instance {
    /// The INIT procedure (`qnetd_client_msg_received_init`), with its
    /// error precedence.
    pub(super) fn on_init(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !matches!(self.check_tls(id, msg), TlsCheck::Ok { .. })
            || !self.certificate_names_cluster(id)
        {
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
    pub(super) fn set_heartbeat(&mut self, now: Timestamp, id: ClientId, hb: u32) -> bool {
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

    /// Checks against the clients already in the cluster
    /// (`qnetd_client_msg_received_init_check_new_client`).
    fn check_new_client(
        &self,
        id: ClientId,
        node_id: Option<u32>,
        tie_breaker: Option<TieBreaker>,
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
            if !again && cluster.members.len() >= MAX_NODES {
                // Intended difference: the reference has no limit.
                log::error!(
                    "Cluster already has the maximum of {MAX_NODES} nodes. Sending error reply"
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
}
