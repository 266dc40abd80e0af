//! Wire enumerations.
//!
//! Every enum carries an `Unknown(raw)` variant, so a value outside the known
//! range is data, not an error (smoltcp's `enum_with_unknown!`). Whether an
//! unknown value is *acceptable* is decided by the decoder in
//! [`crate::proto::msg`], which mirrors the range checks of the reference's
//! `tlv_iter_decode_*` functions (`qdevices/tlv.c`).

/// Declares a wire enum with `Unknown`, conversions both ways and
/// `as_str()` giving the reference's printable name.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($ty:ty) {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $text:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )*
            /// A value this implementation does not know.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The printable name used by the reference server in logs and in
            /// `corosync-qnetd-tool` output.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Unknown(_) => "unknown",
                }
            }

            /// Whether the value is one of the known variants.
            #[must_use]
            pub const fn is_known(self) -> bool {
                !matches!(self, Self::Unknown(_))
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self {
                    Self::Unknown(v) => write!(f, "unknown({v})"),
                    other => f.write_str(other.as_str()),
                }
            }
        }
    };
}

wire_enum! {
    /// Message types (`qdevices/msg.h: enum msg_type`).
    pub enum MsgType(u16) {
        /// Client opens the session, names its cluster.
        Preinit = 0 => "Preinit",
        /// Server's TLS offer.
        PreinitReply = 1 => "Preinit reply",
        /// Client switches the socket to TLS.
        StartTls = 2 => "StartTLS",
        /// Client identifies its node, algorithm and heartbeat.
        Init = 3 => "Init",
        /// Server accepts or refuses the INIT.
        InitReply = 4 => "Init reply",
        /// Server reports a fatal problem with a message.
        ServerError = 5 => "Server error",
        /// Client changes heartbeat or KAP tie-breaker.
        SetOption = 6 => "Set option",
        /// Reply to SET_OPTION.
        SetOptionReply = 7 => "Set option reply",
        /// Client heartbeat.
        EchoRequest = 8 => "Echo request",
        /// Reply to ECHO_REQUEST: the request with the type changed.
        EchoReply = 9 => "Echo reply",
        /// Config, membership or quorum node list.
        NodeList = 10 => "Node list",
        /// Reply to NODE_LIST with a vote.
        NodeListReply = 11 => "Node list reply",
        /// Client asks for its vote.
        AskForVote = 12 => "Ask for vote",
        /// Reply to ASK_FOR_VOTE.
        AskForVoteReply = 13 => "Ask for vote reply",
        /// Unsolicited vote from the server.
        VoteInfo = 14 => "Vote info",
        /// Client acknowledges a VOTE_INFO.
        VoteInfoReply = 15 => "Vote info reply",
        /// Client's regular heuristics result changed.
        HeuristicsChange = 16 => "Heuristics change",
        /// Reply to HEURISTICS_CHANGE.
        HeuristicsChangeReply = 17 => "Heuristics change reply",
    }
}

wire_enum! {
    /// TLV option types (`qdevices/tlv.h: enum tlv_opt_type`).
    pub enum TlvType(u16) {
        /// u32 sequence number.
        MsgSeqNumber = 0 => "MSG_SEQ_NUMBER",
        /// Raw cluster name bytes.
        ClusterName = 1 => "CLUSTER_NAME",
        /// u8 TLS mode of the server.
        TlsSupported = 2 => "TLS_SUPPORTED",
        /// u8 client certificate required flag.
        TlsClientCertRequired = 3 => "TLS_CLIENT_CERT_REQUIRED",
        /// u16 array of message types.
        SupportedMessages = 4 => "SUPPORTED_MESSAGES",
        /// u16 array of option types.
        SupportedOptions = 5 => "SUPPORTED_OPTIONS",
        /// u16 reply error code.
        ReplyErrorCode = 6 => "REPLY_ERROR_CODE",
        /// u32 largest request the server accepts.
        ServerMaximumRequestSize = 7 => "SERVER_MAXIMUM_REQUEST_SIZE",
        /// u32 largest reply the server sends.
        ServerMaximumReplySize = 8 => "SERVER_MAXIMUM_REPLY_SIZE",
        /// u32 node id.
        NodeId = 9 => "NODE_ID",
        /// u16 array of algorithms.
        SupportedDecisionAlgorithms = 10 => "SUPPORTED_DECISION_ALGORITHMS",
        /// u16 algorithm.
        DecisionAlgorithm = 11 => "DECISION_ALGORITHM",
        /// u32 heartbeat interval in ms.
        HeartbeatInterval = 12 => "HEARTBEAT_INTERVAL",
        /// u32 node id + u64 sequence.
        RingId = 13 => "RING_ID",
        /// u64 config version.
        ConfigVersion = 14 => "CONFIG_VERSION",
        /// u32 data center id.
        DataCenterId = 15 => "DATA_CENTER_ID",
        /// u8 node state.
        NodeState = 16 => "NODE_STATE",
        /// Nested TLVs describing one node.
        NodeInfo = 17 => "NODE_INFO",
        /// u8 node list type.
        NodeListType = 18 => "NODE_LIST_TYPE",
        /// u8 vote.
        Vote = 19 => "VOTE",
        /// u8 quorate flag.
        Quorate = 20 => "QUORATE",
        /// u8 mode + u32 node id.
        TieBreaker = 21 => "TIE_BREAKER",
        /// u8 heuristics result.
        Heuristics = 22 => "HEURISTICS",
        /// u8 keep-active-partition tie-breaker flag.
        KeepActivePartitionTieBreaker = 23 => "KEEP_ACTIVE_PARTITION_TIE_BREAKER",
    }
}

wire_enum! {
    /// TLS mode advertised in PREINIT_REPLY (`enum tlv_tls_supported`).
    pub enum TlsSupported(u8) {
        /// `-s off`.
        Unsupported = 0 => "Unsupported",
        /// `-s on`.
        Supported = 1 => "Supported",
        /// `-s req`.
        Required = 2 => "Required",
    }
}

wire_enum! {
    /// Reply error codes (`enum tlv_reply_error_code`).
    pub enum ReplyErrorCode(u16) {
        /// Success.
        NoError = 0 => "No error",
        /// Never sent by 3.0.3.
        UnsupportedNeededMessage = 1 => "Unsupported needed message",
        /// Never sent by 3.0.3.
        UnsupportedNeededOption = 2 => "Unsupported needed option",
        /// `-s req` and TLS not started.
        TlsRequired = 3 => "TLS required",
        /// Header type not in 0..17.
        UnsupportedMessage = 4 => "Unsupported message",
        /// Message longer than `max_client_receive_size`.
        MessageTooLong = 5 => "Message too long",
        /// STARTTLS or INIT before PREINIT.
        PreinitRequired = 6 => "Preinit required",
        /// A required TLV is missing.
        DoesntContainRequiredOption = 7 => "Doesn't contain required option",
        /// Client sent a server-to-client type.
        UnexpectedMessage = 8 => "Unexpected message",
        /// Payload did not decode.
        ErrorDecodingMsg = 9 => "Error decoding message",
        /// Server-side failure.
        InternalError = 10 => "Internal error",
        /// Message needs a successful INIT first.
        InitRequired = 11 => "Init required",
        /// Unknown algorithm, or 2nodelms with a config list not of 2 nodes.
        UnsupportedDecisionAlgorithm = 12 => "Unsupported decision algorithm",
        /// Heartbeat out of range.
        InvalidHeartbeatInterval = 13 => "Invalid heartbeat interval",
        /// ASK_FOR_VOTE with ffsplit.
        UnsupportedDecisionAlgorithmMessage = 14 => "Unsupported decision algorithm message",
        /// Other client of the cluster has another tie-breaker.
        TieBreakerDiffersFromOtherNodes = 15 => "Tie-breaker differs from other nodes",
        /// Other client of the cluster has another algorithm.
        AlgorithmDiffersFromOtherNodes = 16 => "Algorithm differs from other nodes",
        /// Node id already connected in this cluster.
        DuplicateNodeId = 17 => "Duplicate node id",
        /// ffsplit: empty config list or without own node.
        InvalidConfigNodeList = 18 => "Invalid config node list",
        /// ffsplit: empty membership list or without own node.
        InvalidMembershipNodeList = 19 => "Invalid membership node list",
    }
}

wire_enum! {
    /// Decision algorithms (`enum tlv_decision_algorithm_type`).
    pub enum DecisionAlgorithm(u16) {
        /// Testing algorithm.
        Test = 0 => "Test",
        /// Fifty-fifty split.
        Ffsplit = 1 => "Fifty-Fifty split",
        /// Last man standing for two nodes.
        TwoNodeLms = 2 => "2 Node LMS",
        /// Last man standing.
        Lms = 3 => "LMS",
    }
}

wire_enum! {
    /// Votes (`enum tlv_vote`). 0 is "undefined" and invalid on the wire.
    pub enum Vote(u8) {
        /// Not a wire value: "no vote yet".
        Undefined = 0 => "Unknown vote value",
        /// The partition has the qdevice vote.
        Ack = 1 => "ACK",
        /// The partition does not have it.
        Nack = 2 => "NACK",
        /// Stop voting, ask later.
        AskLater = 3 => "Ask later",
        /// Stop voting, a VOTE_INFO will follow.
        WaitForReply = 4 => "Wait for reply",
        /// Keep the current vote.
        NoChange = 5 => "No change",
    }
}

wire_enum! {
    /// Node states in quorum node lists (`enum tlv_node_state`).
    pub enum NodeState(u8) {
        /// Not a wire value: "not set".
        NotSet = 0 => "not set",
        /// Member of the quorum.
        Member = 1 => "member",
        /// Dead.
        Dead = 2 => "dead",
        /// Leaving.
        Leaving = 3 => "leaving",
    }
}

wire_enum! {
    /// Heuristics results (`enum tlv_heuristics`). Undefined is expressed on
    /// the wire by leaving the TLV out.
    pub enum Heuristics(u8) {
        /// No result.
        Undefined = 0 => "Undefined",
        /// Heuristics passed.
        Pass = 1 => "Pass",
        /// Heuristics failed.
        Fail = 2 => "Fail",
    }
}

wire_enum! {
    /// Node list types (`enum tlv_node_list_type`).
    pub enum NodeListType(u8) {
        /// First config list after connecting.
        InitialConfig = 0 => "initial config",
        /// Config list after a corosync.conf change.
        ChangedConfig = 1 => "changed config",
        /// Totem membership.
        Membership = 2 => "membership",
        /// Votequorum view.
        Quorum = 3 => "quorum",
    }
}

wire_enum! {
    /// Quorate flag (`enum tlv_quorate`).
    pub enum Quorate(u8) {
        /// Not quorate.
        Inquorate = 0 => "inquorate",
        /// Quorate.
        Quorate = 1 => "quorate",
    }
}

wire_enum! {
    /// Tie-breaker modes (`enum tlv_tie_breaker_mode`).
    pub enum TieBreakerMode(u8) {
        /// Partition with the lowest node id wins.
        Lowest = 1 => "Node with lowest node ID",
        /// Partition with the highest node id wins.
        Highest = 2 => "Node with highest node ID",
        /// Partition with the configured node id wins.
        NodeId = 3 => "Node with node ID",
    }
}

impl Heuristics {
    /// Ordering used by the algorithms (`tlv_heuristics_cmp`):
    /// Pass > Undefined > Fail. Unknown values rank with Undefined.
    #[must_use]
    pub const fn rank(self) -> u8 {
        match self {
            Self::Fail => 0,
            Self::Undefined | Self::Unknown(_) => 1,
            Self::Pass => 2,
        }
    }
}

impl Vote {
    /// Whether this vote is ACK or NACK (the votes that change corosync's
    /// view of the qdevice).
    #[must_use]
    pub const fn is_ack_or_nack(self) -> bool {
        matches!(self, Self::Ack | Self::Nack)
    }
}

/// All message types 0..=17 in order, as advertised in
/// `SUPPORTED_MESSAGES` (`msg_get_supported_messages`).
pub const SUPPORTED_MESSAGES: [u16; 18] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];

/// All option types 0..=23 in order, as advertised in `SUPPORTED_OPTIONS`
/// (`tlv_get_supported_options`). The client looks for 22 and 23.
pub const SUPPORTED_OPTIONS: [u16; 24] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
];

/// All decision algorithms, as advertised in `SUPPORTED_DECISION_ALGORITHMS`.
pub const SUPPORTED_DECISION_ALGORITHMS: [u16; 4] = [0, 1, 2, 3];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_known_and_unknown() {
        for raw in 0u16..=20 {
            let t = MsgType::from(raw);
            assert_eq!(u16::from(t), raw);
            assert_eq!(t.is_known(), raw <= 17, "type {raw}");
        }
        assert_eq!(TlvType::from(23), TlvType::KeepActivePartitionTieBreaker);
        assert_eq!(TlvType::from(24), TlvType::Unknown(24));
        assert_eq!(Vote::from(5).as_str(), "No change");
        assert_eq!(DecisionAlgorithm::TwoNodeLms.as_str(), "2 Node LMS");
    }

    #[test]
    fn heuristics_order_matches_reference() {
        assert!(Heuristics::Pass.rank() > Heuristics::Undefined.rank());
        assert!(Heuristics::Undefined.rank() > Heuristics::Fail.rank());
    }
}
