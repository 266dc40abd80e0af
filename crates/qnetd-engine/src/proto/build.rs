//! Builders for the messages a `corosync-qdevice` 3.0.3 client sends
//! (`msg_create_*` in `qdevices/msg.c`), for tests, benchmarks, fuzzing and
//! the load generator. The server never sends these.

use super::enums::{
    DecisionAlgorithm, Heuristics, MsgType, NodeListType, Quorate, SUPPORTED_MESSAGES,
    SUPPORTED_OPTIONS,
};
use super::enums::{NodeState, TieBreakerMode};
use super::msg::Msg;
use super::types::{Nodes, RingId, TieBreaker, U16Array, u16_array_bytes};

const MESSAGES: [u8; 36] = u16_array_bytes(SUPPORTED_MESSAGES);
const OPTIONS: [u8; 48] = u16_array_bytes(SUPPORTED_OPTIONS);

/// PREINIT with the client's first sequence number and its cluster name.
#[must_use]
pub fn preinit(seq: u32, cluster_name: &[u8]) -> Msg<'_> {
    let mut m = Msg::new(MsgType::Preinit);
    m.seq = Some(seq);
    m.cluster_name = Some(cluster_name);
    m
}

/// STARTTLS.
#[must_use]
pub fn starttls(seq: u32) -> Msg<'static> {
    let mut m = Msg::new(MsgType::StartTls);
    m.seq = Some(seq);
    m
}

/// The fields of an INIT.
#[derive(Debug, Clone, Copy)]
pub struct Init {
    /// Sequence number.
    pub seq: u32,
    /// Node id.
    pub node_id: u32,
    /// Decision algorithm.
    pub algorithm: DecisionAlgorithm,
    /// Heartbeat interval in ms.
    pub heartbeat_interval: u32,
    /// Tie-breaker.
    pub tie_breaker: TieBreaker,
    /// Ring id of the current membership.
    pub ring_id: RingId,
}

impl Init {
    /// The INIT fields of a plain ffsplit client in the reference traces:
    /// 8 s heartbeat, lowest tie-breaker, ring `1.4`.
    #[must_use]
    pub const fn traced_ffsplit(seq: u32, node_id: u32) -> Self {
        Self {
            seq,
            node_id,
            algorithm: DecisionAlgorithm::Ffsplit,
            heartbeat_interval: 8000,
            tie_breaker: TieBreaker {
                mode: TieBreakerMode::Lowest,
                node_id: 0,
            },
            ring_id: RingId { node_id: 1, seq: 4 },
        }
    }
}

/// INIT as a 3.0.3 client sends it (supported messages 0..17 and options
/// 0..23 included).
#[must_use]
pub fn init(p: &Init) -> Msg<'static> {
    let mut m = Msg::new(MsgType::Init);
    m.seq = Some(p.seq);
    m.supported_messages = U16Array::from_be_bytes(&MESSAGES);
    m.supported_options = U16Array::from_be_bytes(&OPTIONS);
    m.node_id = Some(p.node_id);
    m.decision_algorithm = Some(p.algorithm);
    m.heartbeat_interval = Some(p.heartbeat_interval);
    m.tie_breaker = Some(p.tie_breaker);
    m.ring_id = Some(p.ring_id);
    m
}

/// SET_OPTION with the keep-active-partition tie-breaker only (what 3.0.3
/// sends after INIT_REPLY).
#[must_use]
pub fn set_option_kap(seq: u32, enabled: bool) -> Msg<'static> {
    let mut m = Msg::new(MsgType::SetOption);
    m.seq = Some(seq);
    m.keep_active_partition_tie_breaker = Some(enabled);
    m
}

/// ECHO_REQUEST (the heartbeat).
#[must_use]
pub fn echo_request(seq: u32) -> Msg<'static> {
    let mut m = Msg::new(MsgType::EchoRequest);
    m.seq = Some(seq);
    m
}

/// A configuration node list (initial or changed).
#[must_use]
pub fn config_list(seq: u32, initial: bool, config_version: Option<u64>, ids: &[u32]) -> Msg<'_> {
    let mut m = Msg::new(MsgType::NodeList);
    m.seq = Some(seq);
    m.node_list_type = Some(if initial {
        NodeListType::InitialConfig
    } else {
        NodeListType::ChangedConfig
    });
    m.config_version = config_version;
    m.nodes = Nodes::from_ids(ids, NodeState::NotSet);
    m
}

/// A membership node list; `heuristics` Undefined leaves the option out.
#[must_use]
pub fn membership_list(seq: u32, ring_id: RingId, ids: &[u32], heuristics: Heuristics) -> Msg<'_> {
    let mut m = Msg::new(MsgType::NodeList);
    m.seq = Some(seq);
    m.node_list_type = Some(NodeListType::Membership);
    m.ring_id = Some(ring_id);
    m.nodes = Nodes::from_ids(ids, NodeState::NotSet);
    m.heuristics = (heuristics != Heuristics::Undefined).then_some(heuristics);
    m
}

/// A quorum node list with every listed node a member.
#[must_use]
pub fn quorum_list(seq: u32, quorate: bool, ids: &[u32]) -> Msg<'_> {
    let mut m = Msg::new(MsgType::NodeList);
    m.seq = Some(seq);
    m.node_list_type = Some(NodeListType::Quorum);
    m.quorate = Some(if quorate {
        Quorate::Quorate
    } else {
        Quorate::Inquorate
    });
    m.nodes = Nodes::from_ids(ids, NodeState::Member);
    m
}

/// VOTE_INFO_REPLY echoing a VOTE_INFO's sequence number.
#[must_use]
pub fn vote_info_reply(seq: u32) -> Msg<'static> {
    let mut m = Msg::new(MsgType::VoteInfoReply);
    m.seq = Some(seq);
    m
}

/// ASK_FOR_VOTE.
#[must_use]
pub fn ask_for_vote(seq: u32) -> Msg<'static> {
    let mut m = Msg::new(MsgType::AskForVote);
    m.seq = Some(seq);
    m
}

/// HEURISTICS_CHANGE.
#[must_use]
pub fn heuristics_change(seq: u32, heuristics: Heuristics) -> Msg<'static> {
    let mut m = Msg::new(MsgType::HeuristicsChange);
    m.seq = Some(seq);
    m.heuristics = Some(heuristics);
    m
}

/// Encodes a message into a new vector (test and tool code; the server
/// emits into its own buffers).
#[must_use]
pub fn to_bytes(msg: &Msg<'_>) -> Vec<u8> {
    let mut out = vec![0u8; msg.buffer_len()];
    let n = msg.emit(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The builders reproduce the client messages of the reference traces.
    #[test]
    fn builders_match_traced_client_messages() {
        assert_eq!(
            hex(&to_bytes(&preinit(1, b"testcluster"))),
            "00000000001700000004000000010001000b74657374636c7573746572"
        );
        let init = init(&Init::traced_ffsplit(2, 1));
        assert_eq!(
            hex(&to_bytes(&init)),
            "0003000000930000000400000002000400240000000100020003000400050006000700080009000a000b000c000d000e000f00100011000500300000000100020003000400050006000700080009000a000b000c000d000e000f001000110012001300140015001600170009000400000001000b00020001000c000400001f40001500050100000000000d000c000000010000000000000004"
        );
        assert_eq!(
            hex(&to_bytes(&set_option_kap(3, true))),
            "00060000000d00000004000000030017000101"
        );
        assert_eq!(
            hex(&to_bytes(&config_list(4, true, Some(3), &[1, 2]))),
            "000a0000003100000004000000040012000100000e00080000000000000003001100080009000400000001001100080009000400000002"
        );
        assert_eq!(
            hex(&to_bytes(&membership_list(
                5,
                RingId { node_id: 1, seq: 4 },
                &[1, 2],
                Heuristics::Pass
            ))),
            "000a0000003a00000004000000050012000102000d000c0000000100000000000000040011000800090004000000010011000800090004000000020016000101"
        );
        assert_eq!(
            hex(&to_bytes(&quorum_list(6, true, &[1, 2]))),
            "000a000000340000000400000006001200010300140001010011000d000900040000000100100001010011000d00090004000000020010000101"
        );
        assert_eq!(
            hex(&to_bytes(&vote_info_reply(1))),
            "000f000000080000000400000001"
        );
        assert_eq!(
            hex(&to_bytes(&echo_request(1))),
            "0008000000080000000400000001"
        );
    }
}
