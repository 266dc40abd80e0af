//! The message handlers (`qdevices/qnetd-client-msg-received.c`): one
//! `on_*` per message type a client may send, with the reference's checks
//! in the reference's order, and the dispatch to them.

use core::net::SocketAddr;

use super::certname::cluster_name_matches;
use super::client::{ClientId, PeerAddr};
use super::instance::Instance;
use super::msgio::server_error;
use super::time::Timestamp;
use super::timers::TimerKind;
use crate::algo::{self, Member, store_list};
use crate::proto::{
    DecisionAlgorithm, DecodeError, DecodeFailure, Frame, Heuristics, Msg, MsgType, NodeInfo,
    NodeListType, ReplyErrorCode, SUPPORTED_DECISION_ALGORITHMS, SUPPORTED_MESSAGES,
    SUPPORTED_OPTIONS, TieBreaker, TlsSupported, U16Array, types::MAX_DECODED_NODES,
    types::u16_array_bytes,
};

const SUPPORTED_MESSAGES_BYTES: [u8; 36] = u16_array_bytes(SUPPORTED_MESSAGES);
const SUPPORTED_OPTIONS_BYTES: [u8; 48] = u16_array_bytes(SUPPORTED_OPTIONS);
const SUPPORTED_ALGORITHMS_BYTES: [u8; 8] = u16_array_bytes(SUPPORTED_DECISION_ALGORITHMS);

/// Outcome of the TLS check that starts most handlers
/// (`qnetd_client_msg_received_check_tls`).
enum TlsCheck {
    /// Go on; whether the client has been initialised (INIT succeeded).
    Ok { initialised: bool },
    /// The message was answered with SERVER_ERROR(TLS_REQUIRED) and dropped.
    Dropped,
    /// The client was closed.
    Closed,
}

impl Instance {
    /// Processes one complete message (`qnetd_client_msg_received`).
    /// Returns whether TLS must start now.
    pub(super) fn process(&mut self, now: Timestamp, id: ClientId, frame: Frame<&[u8]>) -> bool {
        let bytes = frame.into_bytes();
        let parsed = Msg::from_frame(frame).and_then(|msg| {
            if msg.nodes.len() > MAX_DECODED_NODES {
                // Only reachable with a raised max_client_receive_size.
                Err(DecodeFailure {
                    error: DecodeError::Capacity("node list"),
                    seq: msg.seq,
                })
            } else {
                Ok(msg)
            }
        });
        let msg = match parsed {
            Ok(msg) => msg,
            Err(fail) => {
                log::warn!("{}", fail.error.reference_text());
                log::info!("Sending back error message");
                self.send(id, &server_error(fail.seq, fail.error.reply_code()));
                return false;
            }
        };
        match msg.msg_type {
            MsgType::Preinit => self.on_preinit(id, &msg),
            MsgType::StartTls => return self.on_starttls(id, &msg),
            MsgType::Init => self.on_init(now, id, &msg),
            MsgType::SetOption => self.on_set_option(now, id, &msg),
            MsgType::EchoRequest => self.on_echo_request(id, &msg, bytes),
            MsgType::NodeList => self.on_node_list(now, id, &msg),
            MsgType::AskForVote => self.on_ask_for_vote(now, id, &msg),
            MsgType::VoteInfoReply => self.on_vote_info_reply(now, id, &msg),
            MsgType::HeuristicsChange => self.on_heuristics_change(now, id, &msg),
            MsgType::PreinitReply
            | MsgType::InitReply
            | MsgType::ServerError
            | MsgType::SetOptionReply
            | MsgType::EchoReply
            | MsgType::NodeListReply
            | MsgType::AskForVoteReply
            | MsgType::VoteInfo
            | MsgType::HeuristicsChangeReply => {
                log::error!(
                    "Received {} message. Sending back error message",
                    msg.msg_type.as_str().to_ascii_lowercase()
                );
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::UnexpectedMessage),
                );
            }
            MsgType::Unknown(t) => {
                // Unreachable: unknown types are skipped at the header.
                log::error!(
                    "Unsupported message {t} received from client. Sending back error message"
                );
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::UnsupportedMessage),
                );
            }
        }
        false
    }

    /// The TLS check at the start of most handlers.
    fn check_tls(&mut self, id: ClientId, msg: &Msg<'_>) -> TlsCheck {
        let (tls, cert_required) = (self.cfg.tls, self.cfg.client_cert_required);
        let Some(client) = self.client_mut(id) else {
            return TlsCheck::Closed;
        };
        let check_certificate = match tls {
            TlsSupported::Supported => {
                client.tls_started && cert_required && !client.tls_peer_verified
            }
            TlsSupported::Required => {
                if !client.tls_started {
                    log::error!(
                        "TLS is required but doesn't started yet. Sending back error message"
                    );
                    self.send(id, &server_error(msg.seq, ReplyErrorCode::TlsRequired));
                    return TlsCheck::Dropped;
                }
                cert_required && !client.tls_peer_verified
            }
            TlsSupported::Unsupported | TlsSupported::Unknown(_) => false,
        };
        if check_certificate {
            match client.peer_names.as_deref() {
                None => {
                    log::error!("Client doesn't sent valid certificate. Disconnecting client");
                    self.close(id);
                    return TlsCheck::Closed;
                }
                Some(names) if !cluster_name_matches(&client.cluster_name, names) => {
                    log::error!(
                        "Client doesn't sent certificate with valid CN. Disconnecting client"
                    );
                    self.close(id);
                    return TlsCheck::Closed;
                }
                Some(_) => client.tls_peer_verified = true,
            }
        }
        TlsCheck::Ok {
            initialised: client.init_received,
        }
    }

    /// TLS check, then "init required" (the common preamble).
    fn check_initialised(&mut self, id: ClientId, msg: &Msg<'_>, what: &str) -> bool {
        match self.check_tls(id, msg) {
            TlsCheck::Ok { initialised: true } => return true,
            TlsCheck::Ok { initialised: false } => {}
            TlsCheck::Dropped | TlsCheck::Closed => return false,
        }
        log::error!("Received {what} message before init message. Sending error reply.");
        self.send(id, &server_error(msg.seq, ReplyErrorCode::InitRequired));
        false
    }

    fn on_preinit(&mut self, id: ClientId, msg: &Msg<'_>) {
        let (tls, cert_required) = (self.cfg.tls, self.cfg.client_cert_required);
        let Some(client) = self.client_mut(id) else {
            return;
        };
        let Some(name) = msg.cluster_name else {
            log::error!("Received preinit message without cluster name. Sending error reply.");
            self.send(
                id,
                &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        client.cluster_name.clear();
        client.cluster_name.extend_from_slice(name);
        client.preinit_received = true;
        log::debug!(
            "Client {} sent preinit, cluster {}",
            client.addr,
            client.name()
        );
        let mut reply = Msg::new(MsgType::PreinitReply);
        reply.seq = msg.seq;
        reply.tls_supported = Some(tls);
        reply.tls_client_cert_required = Some(u8::from(cert_required));
        self.send(id, &reply);
    }

    fn on_starttls(&mut self, id: ClientId, msg: &Msg<'_>) -> bool {
        let tls = self.cfg.tls;
        let Some(client) = self.client_mut(id) else {
            return false;
        };
        if !client.preinit_received {
            log::error!("Received starttls before preinit message. Sending error reply.");
            self.send(id, &server_error(msg.seq, ReplyErrorCode::PreinitRequired));
            return false;
        }
        if client.tls_started || matches!(tls, TlsSupported::Unsupported | TlsSupported::Unknown(_))
        {
            log::error!("Can't start TLS. Disconnecting client.");
            self.close(id);
            return false;
        }
        client.tls_started = true;
        client.tls_peer_verified = false;
        true
    }

    /// The INIT procedure (`qnetd_client_msg_received_init`), with its
    /// error precedence.
    fn on_init(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !matches!(self.check_tls(id, msg), TlsCheck::Ok { .. }) {
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
    fn set_heartbeat(&mut self, now: Timestamp, id: ClientId, hb: u32) -> bool {
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

    fn on_set_option(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !self.check_initialised(id, msg, "set option") {
            return;
        }
        if let Some(hb) = msg.heartbeat_interval {
            if hb < self.cfg.heartbeat_interval_min || hb > self.cfg.heartbeat_interval_max {
                log::error!(
                    "Client requested invalid heartbeat interval {hb}. Sending error reply."
                );
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::InvalidHeartbeatInterval),
                );
                return;
            }
            if !self.set_heartbeat(now, id, hb) {
                self.send(
                    id,
                    &server_error(msg.seq, ReplyErrorCode::InvalidHeartbeatInterval),
                );
                return;
            }
        }
        let mut kap_now = None;
        if let Some((slot, idx)) = self.member_of(id)
            && let Some(m) = self
                .clusters
                .get_mut(slot)
                .and_then(|c| c.members.get_mut(idx))
        {
            if let Some(kap) = msg.keep_active_partition_tie_breaker {
                m.keep_active_partition_tie_breaker = kap;
            }
            kap_now = Some(m.keep_active_partition_tie_breaker);
        }
        let hb_now = self.client(id).map_or(0, |c| c.heartbeat_interval);
        let mut reply = Msg::new(MsgType::SetOptionReply);
        reply.seq = msg.seq;
        if msg.heartbeat_interval.is_some() {
            reply.heartbeat_interval = Some(hb_now);
        }
        if msg.keep_active_partition_tie_breaker.is_some() {
            reply.keep_active_partition_tie_breaker = kap_now;
        }
        self.send(id, &reply);
    }

    fn on_echo_request(&mut self, id: ClientId, msg: &Msg<'_>, frame: &[u8]) {
        if !self.check_initialised(id, msg, "echo request") {
            return;
        }
        // The reply is the request with only the type changed.
        let [t0, t1] = u16::from(MsgType::EchoReply).to_be_bytes();
        self.enqueue(id, frame.len(), |buf| {
            buf.copy_from_slice(frame);
            if let Some(t) = buf.get_mut(..2) {
                t.copy_from_slice(&[t0, t1]);
            }
            true
        });
    }

    fn on_node_list(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !self.check_initialised(id, msg, "node list") {
            return;
        }
        let Some(list_type) = msg.node_list_type else {
            log::error!(
                "Received node list message without node list type set. Sending error reply."
            );
            self.send(
                id,
                &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        let Some(seq) = msg.seq else {
            log::error!("Received node list message without seq number set. Sending error reply.");
            self.send(
                id,
                &server_error(None, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        let Some((slot, idx)) = self.member_of(id) else {
            return;
        };
        let Some(mut nodes) = self.node_scratch.take() else {
            return;
        };
        // Cannot fail: process() refused lists longer than the capacity.
        if msg.nodes.decode_into(&mut nodes).is_ok() {
            self.node_list(now, id, msg, (list_type, seq), (slot, idx), &nodes);
        }
        self.node_scratch = Some(nodes);
    }

    /// The node list handler proper, with the nodes decoded.
    fn node_list(
        &mut self,
        now: Timestamp,
        id: ClientId,
        msg: &Msg<'_>,
        (list_type, seq): (NodeListType, u32),
        (slot, idx): (usize, usize),
        nodes: &[NodeInfo],
    ) {
        let heuristics = msg.heuristics.unwrap_or(Heuristics::Undefined);
        let event = match list_type {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                let initial = list_type == NodeListType::InitialConfig;
                log::debug!(
                    "Client {} sent {} node list: seq={seq} config_version={:?} nodes={:?}",
                    self.addr(id),
                    if initial { "initial" } else { "changed" },
                    msg.config_version,
                    NodeIds(nodes)
                );
                algo::Event::ConfigList {
                    list: nodes,
                    initial,
                }
            }
            NodeListType::Membership => {
                let Some(ring_id) = msg.ring_id else {
                    log::error!(
                        "Received node list message without ring id number set. Sending error reply."
                    );
                    self.send(
                        id,
                        &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
                    );
                    return;
                };
                log::debug!(
                    "Client {} sent membership node list: seq={seq} ring_id={ring_id} heuristics={heuristics} nodes={:?}",
                    self.addr(id),
                    NodeIds(nodes)
                );
                algo::Event::MembershipList {
                    ring_id,
                    list: nodes,
                    heuristics,
                }
            }
            NodeListType::Quorum => {
                let Some(quorate) = msg.quorate else {
                    log::error!(
                        "Received quorum list message without quorate set. Sending error reply."
                    );
                    self.send(
                        id,
                        &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
                    );
                    return;
                };
                log::debug!(
                    "Client {} sent quorum node list: seq={seq} quorate={quorate} nodes={:?}",
                    self.addr(id),
                    NodeIds(nodes)
                );
                algo::Event::QuorumList
            }
            NodeListType::Unknown(_) => return,
        };
        let Some(vote) = self.decide(now, id, msg, (slot, idx), event) else {
            return;
        };
        // Store the list (qnetd_client_msg_received_node_list).
        let Some(member) = self
            .clusters
            .get_mut(slot)
            .and_then(|c| c.members.get_mut(idx))
        else {
            return;
        };
        match list_type {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                store_list(&mut member.config_list, nodes);
                member.config_version = msg.config_version;
            }
            NodeListType::Membership => {
                store_list(&mut member.membership_list, nodes);
                member.ring_id = msg.ring_id.unwrap_or(member.ring_id);
                member.membership_heuristics = heuristics;
                member.heuristics = heuristics;
            }
            NodeListType::Quorum | NodeListType::Unknown(_) => {
                store_list(&mut member.quorum_list, nodes);
                member.quorate = msg.quorate;
            }
        }
        let mut reply = Msg::new(MsgType::NodeListReply);
        reply.seq = Some(seq);
        reply.node_list_type = Some(list_type);
        self.send_vote_reply(id, (slot, idx), reply, vote);
    }

    fn addr(&self, id: ClientId) -> PeerAddr {
        self.client(id)
            .map_or(PeerAddr(SocketAddr::from(([0, 0, 0, 0], 0))), |c| c.addr)
    }

    /// The preamble of ASK_FOR_VOTE and VOTE_INFO_REPLY: TLS and INIT
    /// checks, then the sequence number (DOESNT_CONTAIN_REQUIRED_OPTION
    /// without it). Returns the sequence number and the member.
    fn member_request(
        &mut self,
        id: ClientId,
        msg: &Msg<'_>,
        what: &str,
    ) -> Option<(u32, (usize, usize))> {
        if !self.check_initialised(id, msg, what) {
            return None;
        }
        let Some(seq) = msg.seq else {
            log::error!("Received {what} message without seq number set. Sending error reply.");
            self.send(
                id,
                &server_error(None, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return None;
        };
        Some((seq, self.member_of(id)?))
    }

    fn on_ask_for_vote(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        let Some((seq, member)) = self.member_request(id, msg, "ask for vote") else {
            return;
        };
        log::debug!("Client {} asked for a vote: seq={seq}", self.addr(id));
        let Some(vote) = self.decide(now, id, msg, member, algo::Event::AskForVote) else {
            return;
        };
        let mut reply = Msg::new(MsgType::AskForVoteReply);
        reply.seq = Some(seq);
        self.send_vote_reply(id, member, reply, vote);
    }

    fn on_vote_info_reply(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        let Some((seq, member)) = self.member_request(id, msg, "vote info reply") else {
            return;
        };
        log::debug!(
            "Client {} replied back to vote info message: seq={seq}",
            self.addr(id)
        );
        // No reply on success.
        let _ = self.decide(now, id, msg, member, algo::Event::VoteInfoReply { seq });
    }

    fn on_heuristics_change(&mut self, now: Timestamp, id: ClientId, msg: &Msg<'_>) {
        if !self.check_initialised(id, msg, "heuristics change") {
            return;
        }
        let (Some(seq), Some(heuristics)) = (msg.seq, msg.heuristics) else {
            log::error!(
                "Received heuristics change message without seq number set or with undefined heuristics. Sending error reply."
            );
            self.send(
                id,
                &server_error(msg.seq, ReplyErrorCode::DoesntContainRequiredOption),
            );
            return;
        };
        let Some(member) = self.member_of(id) else {
            return;
        };
        log::debug!(
            "Client {} sent heuristics change: seq={seq} heuristics={heuristics}",
            self.addr(id)
        );
        let event = algo::Event::HeuristicsChange { heuristics };
        let Some(vote) = self.decide(now, id, msg, member, event) else {
            return;
        };
        if let Some(m) = self
            .clusters
            .get_mut(member.0)
            .and_then(|c| c.members.get_mut(member.1))
        {
            m.regular_heuristics = heuristics;
            m.heuristics = heuristics;
        }
        let mut reply = Msg::new(MsgType::HeuristicsChangeReply);
        reply.seq = Some(seq);
        reply.heuristics = Some(heuristics);
        self.send_vote_reply(id, member, reply, vote);
    }
}

/// Debug-formats the node ids of a list without allocating.
struct NodeIds<'a>(&'a [NodeInfo]);

impl core::fmt::Debug for NodeIds<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|n| n.node_id))
            .finish()
    }
}
