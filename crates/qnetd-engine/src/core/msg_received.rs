//! The message handlers (`qdevices/qnetd-client-msg-received.c`): one
//! `on_*` per message type a client may send, with the reference's checks
//! in the reference's order, and the dispatch to them.

use core::net::SocketAddr;

use super::certname::cluster_name_matches;
use super::client::{ClientId, PeerAddr};
use super::instance::Instance;
use super::msgio::server_error;
use super::time::Timestamp;
use crate::algo::{self, store_list};
use crate::proto::{
    Frame, Heuristics, Msg, MsgType, NodeInfo, NodeListType, ReplyErrorCode,
    SUPPORTED_DECISION_ALGORITHMS, SUPPORTED_MESSAGES, SUPPORTED_OPTIONS, TlsSupported,
    types::u16_array_bytes,
};

mod init;

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
        let mut msg = Msg::new(frame.msg_type());
        if let Err(fail) = msg.decode_options(frame) {
            log::warn!("{}", fail.error.reference_text());
            log::info!("Sending back error message");
            self.send(id, &server_error(fail.seq, fail.error.reply_code()));
            return false;
        }
        if msg.msg_type != MsgType::EchoRequest {
            self.status_changed();
        }
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
        if client.preinit_received {
            self.refuse_second_preinit(id);
            return;
        }
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

    /// Intended difference from the reference, which overwrites the stored
    /// name: the cluster name is bound to the connection by its first
    /// PREINIT, so a certificate checked against one cluster can never
    /// admit the connection to another. A real qdevice reconnects instead
    /// of sending PREINIT twice; the connection is closed as the reference
    /// closes one that sends STARTTLS twice.
    fn refuse_second_preinit(&mut self, id: ClientId) {
        log::error!("Received second preinit message. Disconnecting client.");
        self.close(id);
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
