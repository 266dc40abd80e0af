//! The message representation: [`Msg`], with [`Msg::parse`] and
//! [`Msg::emit`].
//!
//! Like the reference decoder (`msg_decode` in `qdevices/msg.c`), parsing is
//! independent of the message type: every known option is decoded into its
//! field and unknown options are skipped. Which options a message *needs*
//! is the session's business (`core`), because a missing option gets a
//! message-specific reply code rather than a decode error.
//!
//! Emission writes the options of each message type in the order of the
//! reference's `msg_create_*` builders, so replies are byte-identical to
//! the reference's. Options a builder does not know are written after them
//! in option-number order.

use super::enums::{
    DecisionAlgorithm, Heuristics, MsgType, NodeListType, NodeState, Quorate, ReplyErrorCode,
    TieBreakerMode, TlsSupported, TlvType, Vote,
};
use super::error::{DecodeError, EncodeError};
use super::frame::{Frame, HEADER_LEN, Header};
use super::tlv::{TLV_HEADER_LEN, Tlv, TlvIter, TlvWriter};
use super::types::{NodeInfo, Nodes, RingId, TieBreaker, U16Array};

/// A decoded message, or one to be emitted.
///
/// Fields are `None` when the option was absent. `nodes` holds all
/// NODE_INFO options in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg<'a> {
    /// Message type.
    pub msg_type: MsgType,
    /// MSG_SEQ_NUMBER.
    pub seq: Option<u32>,
    /// CLUSTER_NAME (raw bytes).
    pub cluster_name: Option<&'a [u8]>,
    /// TLS_SUPPORTED.
    pub tls_supported: Option<TlsSupported>,
    /// TLS_CLIENT_CERT_REQUIRED (any u8).
    pub tls_client_cert_required: Option<u8>,
    /// SUPPORTED_MESSAGES.
    pub supported_messages: Option<U16Array<'a>>,
    /// SUPPORTED_OPTIONS.
    pub supported_options: Option<U16Array<'a>>,
    /// REPLY_ERROR_CODE (not range-checked).
    pub reply_error_code: Option<ReplyErrorCode>,
    /// SERVER_MAXIMUM_REQUEST_SIZE.
    pub server_maximum_request_size: Option<u32>,
    /// SERVER_MAXIMUM_REPLY_SIZE.
    pub server_maximum_reply_size: Option<u32>,
    /// NODE_ID.
    pub node_id: Option<u32>,
    /// SUPPORTED_DECISION_ALGORITHMS.
    pub supported_decision_algorithms: Option<U16Array<'a>>,
    /// DECISION_ALGORITHM (not range-checked here; INIT checks it).
    pub decision_algorithm: Option<DecisionAlgorithm>,
    /// HEARTBEAT_INTERVAL in ms.
    pub heartbeat_interval: Option<u32>,
    /// RING_ID.
    pub ring_id: Option<RingId>,
    /// CONFIG_VERSION.
    pub config_version: Option<u64>,
    /// Top-level DATA_CENTER_ID (decoded but unused by the server).
    pub data_center_id: Option<u32>,
    /// Top-level NODE_STATE (decoded but unused by the server).
    pub node_state: Option<NodeState>,
    /// All NODE_INFO options, in order.
    pub nodes: Nodes<'a>,
    /// NODE_LIST_TYPE.
    pub node_list_type: Option<NodeListType>,
    /// VOTE.
    pub vote: Option<Vote>,
    /// QUORATE.
    pub quorate: Option<Quorate>,
    /// TIE_BREAKER.
    pub tie_breaker: Option<TieBreaker>,
    /// HEURISTICS (absent means undefined).
    pub heuristics: Option<Heuristics>,
    /// KEEP_ACTIVE_PARTITION_TIE_BREAKER.
    pub keep_active_partition_tie_breaker: Option<bool>,
}

/// A decode failure together with the sequence number decoded before it,
/// which the error reply echoes (§1.6 of the protocol notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeFailure {
    /// What went wrong.
    pub error: DecodeError,
    /// MSG_SEQ_NUMBER, if it was decoded before the faulty option.
    pub seq: Option<u32>,
}

/// Option order of the reference builders, per message type.
fn emit_order(msg_type: MsgType) -> &'static [TlvType] {
    use TlvType as T;
    match msg_type {
        MsgType::Preinit => &[T::MsgSeqNumber, T::ClusterName],
        MsgType::PreinitReply => &[T::MsgSeqNumber, T::TlsSupported, T::TlsClientCertRequired],
        MsgType::StartTls
        | MsgType::EchoRequest
        | MsgType::EchoReply
        | MsgType::AskForVote
        | MsgType::VoteInfoReply => &[T::MsgSeqNumber],
        MsgType::Init => &[
            T::MsgSeqNumber,
            T::SupportedMessages,
            T::SupportedOptions,
            T::NodeId,
            T::DecisionAlgorithm,
            T::HeartbeatInterval,
            T::TieBreaker,
            T::RingId,
        ],
        MsgType::InitReply => &[
            T::ReplyErrorCode,
            T::SupportedMessages,
            T::SupportedOptions,
            T::MsgSeqNumber,
            T::ServerMaximumRequestSize,
            T::ServerMaximumReplySize,
            T::SupportedDecisionAlgorithms,
        ],
        MsgType::ServerError => &[T::MsgSeqNumber, T::ReplyErrorCode],
        MsgType::SetOption | MsgType::SetOptionReply => &[
            T::MsgSeqNumber,
            T::HeartbeatInterval,
            T::KeepActivePartitionTieBreaker,
        ],
        MsgType::NodeList => &[
            T::MsgSeqNumber,
            T::NodeListType,
            T::RingId,
            T::ConfigVersion,
            T::Quorate,
            T::NodeInfo,
            T::Heuristics,
        ],
        MsgType::NodeListReply => &[T::MsgSeqNumber, T::NodeListType, T::RingId, T::Vote],
        MsgType::AskForVoteReply | MsgType::VoteInfo => &[T::MsgSeqNumber, T::Vote, T::RingId],
        MsgType::HeuristicsChange => &[T::MsgSeqNumber, T::Heuristics],
        MsgType::HeuristicsChangeReply => &[T::MsgSeqNumber, T::Vote, T::RingId, T::Heuristics],
        MsgType::Unknown(_) => &[],
    }
}

fn invalid_value(tlv: &Tlv<'_>) -> DecodeError {
    DecodeError::InvalidValue { tlv: tlv.ty }
}

/// Decodes an u8 enum whose known values are the only valid ones.
fn known_u8<E: From<u8> + Copy>(
    tlv: &Tlv<'_>,
    valid: impl Fn(E) -> bool,
) -> Result<E, DecodeError> {
    let v = E::from(tlv.u8()?);
    if valid(v) {
        Ok(v)
    } else {
        Err(invalid_value(tlv))
    }
}

fn u16_array<'a>(tlv: &Tlv<'a>) -> Result<U16Array<'a>, DecodeError> {
    U16Array::from_be_bytes(tlv.value).ok_or(DecodeError::InvalidLength {
        tlv: tlv.ty,
        len: tlv.wire_len(),
    })
}

/// Decodes the value of a NODE_INFO option (`tlv_iter_decode_node_info`).
pub(crate) fn decode_node_info(value: &[u8]) -> Result<NodeInfo, DecodeError> {
    let mut info = NodeInfo::new(0);
    for tlv in TlvIter::new(value) {
        let tlv = tlv?;
        match tlv.ty {
            TlvType::NodeId => info.node_id = tlv.u32()?,
            TlvType::DataCenterId => info.data_center_id = tlv.u32()?,
            TlvType::NodeState => info.node_state = node_state(&tlv)?,
            _ => {}
        }
    }
    if info.node_id == 0 {
        return Err(DecodeError::InvalidValue {
            tlv: TlvType::NodeInfo,
        });
    }
    Ok(info)
}

fn node_state(tlv: &Tlv<'_>) -> Result<NodeState, DecodeError> {
    known_u8(tlv, |s: NodeState| {
        matches!(s, NodeState::Member | NodeState::Dead | NodeState::Leaving)
    })
}

fn node_info_len(n: &NodeInfo) -> usize {
    // NODE_ID, then the optional DATA_CENTER_ID and NODE_STATE: at most 25.
    let dc = if n.data_center_id != 0 {
        TLV_HEADER_LEN + 4
    } else {
        0
    };
    let state = if n.node_state != NodeState::NotSet {
        TLV_HEADER_LEN + 1
    } else {
        0
    };
    (TLV_HEADER_LEN + 4)
        .saturating_add(dc)
        .saturating_add(state)
}

impl<'a> Msg<'a> {
    /// A message of the given type with no options.
    #[must_use]
    pub const fn new(msg_type: MsgType) -> Self {
        Self {
            msg_type,
            seq: None,
            cluster_name: None,
            tls_supported: None,
            tls_client_cert_required: None,
            supported_messages: None,
            supported_options: None,
            reply_error_code: None,
            server_maximum_request_size: None,
            server_maximum_reply_size: None,
            node_id: None,
            supported_decision_algorithms: None,
            decision_algorithm: None,
            heartbeat_interval: None,
            ring_id: None,
            config_version: None,
            data_center_id: None,
            node_state: None,
            nodes: Nodes::from_slice(&[]),
            node_list_type: None,
            vote: None,
            quorate: None,
            tie_breaker: None,
            heuristics: None,
            keep_active_partition_tie_breaker: None,
        }
    }

    /// Decodes a complete message (header included) into `self`, replacing
    /// its contents. Decoding in place keeps the large node list off the
    /// caller's stack when `self` lives in a long-lived scratch slot.
    ///
    /// # Errors
    /// [`DecodeFailure`] for a frame whose length field disagrees with
    /// `frame.len()`, or for any option the reference would reject.
    pub fn parse_into(&mut self, frame: &'a [u8]) -> Result<(), DecodeFailure> {
        let header = Header::parse(frame).ok_or(DecodeFailure {
            error: DecodeError::Inconsistent,
            seq: None,
        })?;
        *self = Self::new(header.msg_type);
        if header.total_len() != Some(frame.len()) {
            return Err(DecodeFailure {
                error: DecodeError::Inconsistent,
                seq: None,
            });
        }
        self.decode_payload(frame.get(HEADER_LEN..).unwrap_or_default())
    }

    /// Decodes the options of a message whose header is already parsed
    /// into `self`, which the caller made with
    /// `Msg::new(frame.msg_type())` (the server's read path: one header
    /// parse per message, and the message built once where it lives, not
    /// moved out of a `Result`).
    ///
    /// # Errors
    /// As [`Msg::parse_into`], except that a [`Frame`] is always
    /// consistent.
    pub fn decode_options(&mut self, frame: Frame<&'a [u8]>) -> Result<(), DecodeFailure> {
        debug_assert_eq!(self.msg_type, frame.msg_type());
        self.decode_payload(frame.into_bytes().get(HEADER_LEN..).unwrap_or_default())
    }

    /// Decodes the options of a payload into `self`.
    fn decode_payload(&mut self, payload: &'a [u8]) -> Result<(), DecodeFailure> {
        let mut node_count = 0usize;
        for tlv in TlvIter::new(payload) {
            let result = tlv.and_then(|tlv| self.decode_option(&tlv, &mut node_count));
            if let Err(error) = result {
                return Err(DecodeFailure {
                    error,
                    seq: self.seq,
                });
            }
        }
        if node_count > 0 {
            self.nodes = Nodes::wire(payload, node_count);
        }
        Ok(())
    }

    /// Decodes a complete message (header included).
    ///
    /// # Errors
    /// As [`Msg::parse_into`].
    pub fn parse(frame: &'a [u8]) -> Result<Self, DecodeFailure> {
        let mut msg = Self::new(MsgType::Unknown(u16::MAX));
        msg.parse_into(frame)?;
        Ok(msg)
    }

    fn decode_option(&mut self, tlv: &Tlv<'a>, node_count: &mut usize) -> Result<(), DecodeError> {
        match tlv.ty {
            TlvType::MsgSeqNumber => self.seq = Some(tlv.u32()?),
            TlvType::ClusterName => self.cluster_name = Some(tlv.value),
            TlvType::TlsSupported => {
                self.tls_supported = Some(known_u8(tlv, TlsSupported::is_known)?);
            }
            TlvType::TlsClientCertRequired => self.tls_client_cert_required = Some(tlv.u8()?),
            TlvType::SupportedMessages => self.supported_messages = Some(u16_array(tlv)?),
            TlvType::SupportedOptions => self.supported_options = Some(u16_array(tlv)?),
            TlvType::ReplyErrorCode => self.reply_error_code = Some(tlv.u16()?.into()),
            TlvType::ServerMaximumRequestSize => {
                self.server_maximum_request_size = Some(tlv.u32()?);
            }
            TlvType::ServerMaximumReplySize => self.server_maximum_reply_size = Some(tlv.u32()?),
            TlvType::NodeId => self.node_id = Some(tlv.u32()?),
            TlvType::SupportedDecisionAlgorithms => {
                self.supported_decision_algorithms = Some(u16_array(tlv)?);
            }
            TlvType::DecisionAlgorithm => self.decision_algorithm = Some(tlv.u16()?.into()),
            TlvType::HeartbeatInterval => self.heartbeat_interval = Some(tlv.u32()?),
            TlvType::RingId => {
                let b = tlv.bytes::<12>()?;
                let (node, seq) = b.split_at(4);
                self.ring_id = Some(RingId {
                    node_id: u32::from_be_bytes(node.try_into().unwrap_or_default()),
                    seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
                });
            }
            TlvType::ConfigVersion => self.config_version = Some(tlv.u64()?),
            TlvType::DataCenterId => self.data_center_id = Some(tlv.u32()?),
            TlvType::NodeState => self.node_state = Some(node_state(tlv)?),
            TlvType::NodeInfo => {
                decode_node_info(tlv.value)?;
                if *node_count >= super::types::MAX_NODES {
                    // More nodes than corosync can have (intended
                    // difference: the reference accepts them).
                    return Err(DecodeError::Capacity("node list"));
                }
                *node_count = node_count.saturating_add(1);
            }
            TlvType::NodeListType => {
                self.node_list_type = Some(known_u8(tlv, NodeListType::is_known)?);
            }
            TlvType::Vote => {
                self.vote = Some(known_u8(tlv, |v: Vote| {
                    v.is_known() && v != Vote::Undefined
                })?);
            }
            TlvType::Quorate => self.quorate = Some(known_u8(tlv, Quorate::is_known)?),
            TlvType::TieBreaker => {
                let [mode, n0, n1, n2, n3] = tlv.bytes::<5>()?;
                let mode = TieBreakerMode::from(mode);
                if !mode.is_known() {
                    return Err(invalid_value(tlv));
                }
                let node_id = if mode == TieBreakerMode::NodeId {
                    u32::from_be_bytes([n0, n1, n2, n3])
                } else {
                    0
                };
                self.tie_breaker = Some(TieBreaker { mode, node_id });
            }
            TlvType::Heuristics => {
                self.heuristics = Some(known_u8(tlv, |h: Heuristics| {
                    matches!(h, Heuristics::Pass | Heuristics::Fail)
                })?);
            }
            TlvType::KeepActivePartitionTieBreaker => {
                let v: u8 = tlv.u8()?;
                self.keep_active_partition_tie_breaker = Some(match v {
                    0 => false,
                    1 => true,
                    _ => return Err(invalid_value(tlv)),
                });
            }
            TlvType::Unknown(_) => {}
        }
        Ok(())
    }

    /// Writes the option `ty` if it is set.
    fn emit_option(&self, ty: TlvType, w: &mut TlvWriter<'_>) -> Result<(), EncodeError> {
        match ty {
            TlvType::MsgSeqNumber => opt(w, self.seq, |w, v| w.u32(ty, v)),
            TlvType::ClusterName => opt(w, self.cluster_name, |w, v| w.tlv(ty, v)),
            TlvType::TlsSupported => opt(w, self.tls_supported, |w, v| w.u8(ty, v.into())),
            TlvType::TlsClientCertRequired => {
                opt(w, self.tls_client_cert_required, |w, v| w.u8(ty, v))
            }
            TlvType::SupportedMessages => {
                opt(w, self.supported_messages, |w, v| w.tlv(ty, v.as_bytes()))
            }
            TlvType::SupportedOptions => {
                opt(w, self.supported_options, |w, v| w.tlv(ty, v.as_bytes()))
            }
            TlvType::ReplyErrorCode => opt(w, self.reply_error_code, |w, v| w.u16(ty, v.into())),
            TlvType::ServerMaximumRequestSize => {
                opt(w, self.server_maximum_request_size, |w, v| w.u32(ty, v))
            }
            TlvType::ServerMaximumReplySize => {
                opt(w, self.server_maximum_reply_size, |w, v| w.u32(ty, v))
            }
            TlvType::NodeId => opt(w, self.node_id, |w, v| w.u32(ty, v)),
            TlvType::SupportedDecisionAlgorithms => {
                opt(w, self.supported_decision_algorithms, |w, v| {
                    w.tlv(ty, v.as_bytes())
                })
            }
            TlvType::DecisionAlgorithm => {
                opt(w, self.decision_algorithm, |w, v| w.u16(ty, v.into()))
            }
            TlvType::HeartbeatInterval => opt(w, self.heartbeat_interval, |w, v| w.u32(ty, v)),
            TlvType::RingId => opt(w, self.ring_id, |w, r| {
                w.header(ty, 12)?;
                w.raw(&r.node_id.to_be_bytes())?;
                w.raw(&r.seq.to_be_bytes())
            }),
            TlvType::ConfigVersion => opt(w, self.config_version, |w, v| w.u64(ty, v)),
            TlvType::DataCenterId => opt(w, self.data_center_id, |w, v| w.u32(ty, v)),
            TlvType::NodeState => opt(w, self.node_state, |w, v| w.u8(ty, v.into())),
            TlvType::NodeInfo => {
                for n in self.nodes.iter() {
                    let n = &n;
                    w.header(ty, node_info_len(n))?;
                    w.u32(TlvType::NodeId, n.node_id)?;
                    if n.data_center_id != 0 {
                        w.u32(TlvType::DataCenterId, n.data_center_id)?;
                    }
                    if n.node_state != NodeState::NotSet {
                        w.u8(TlvType::NodeState, n.node_state.into())?;
                    }
                }
                Ok(())
            }
            TlvType::NodeListType => opt(w, self.node_list_type, |w, v| w.u8(ty, v.into())),
            TlvType::Vote => opt(w, self.vote, |w, v| w.u8(ty, v.into())),
            TlvType::Quorate => opt(w, self.quorate, |w, v| w.u8(ty, v.into())),
            TlvType::TieBreaker => opt(w, self.tie_breaker, |w, t| {
                let node = if t.mode == TieBreakerMode::NodeId {
                    t.node_id
                } else {
                    0
                };
                let [n0, n1, n2, n3] = node.to_be_bytes();
                w.tlv(ty, &[t.mode.into(), n0, n1, n2, n3])
            }),
            TlvType::Heuristics => opt(w, self.heuristics, |w, v| w.u8(ty, v.into())),
            TlvType::KeepActivePartitionTieBreaker => {
                opt(w, self.keep_active_partition_tie_breaker, |w, v| {
                    w.u8(ty, u8::from(v))
                })
            }
            TlvType::Unknown(_) => Ok(()),
        }
    }

    fn emit_payload(&self, w: &mut TlvWriter<'_>) -> Result<(), EncodeError> {
        let order = emit_order(self.msg_type);
        for &ty in order {
            self.emit_option(ty, w)?;
        }
        for raw in 0u16..=23 {
            let ty = TlvType::from(raw);
            if !order.contains(&ty) {
                self.emit_option(ty, w)?;
            }
        }
        Ok(())
    }

    /// Bytes [`Msg::emit`] writes, header included.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        let mut w = TlvWriter::measure();
        // Measuring cannot fail except for an over-long value, which emit
        // reports; the measured length is then irrelevant.
        let _ = self.emit_payload(&mut w);
        w.len().saturating_add(HEADER_LEN)
    }

    /// Writes the message (header included) at the start of `out` and
    /// returns its length.
    ///
    /// # Errors
    /// [`EncodeError`] if `out` is too small or a value is too long.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let (header, body) = out
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(EncodeError::BufferTooSmall { needed: HEADER_LEN })?;
        let mut w = TlvWriter::new(body);
        self.emit_payload(&mut w).map_err(|e| match e {
            EncodeError::BufferTooSmall { .. } => EncodeError::BufferTooSmall {
                needed: self.buffer_len(),
            },
            other => other,
        })?;
        let payload_len = w.len();
        *header = Header {
            msg_type: self.msg_type,
            payload_len: u32::try_from(payload_len).map_err(|_| EncodeError::ValueTooLong)?,
        }
        .to_bytes();
        Ok(payload_len.saturating_add(HEADER_LEN))
    }
}

fn opt<T: Copy>(
    w: &mut TlvWriter<'_>,
    v: Option<T>,
    f: impl FnOnce(&mut TlvWriter<'_>, T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    match v {
        Some(v) => f(w, v),
        None => Ok(()),
    }
}
