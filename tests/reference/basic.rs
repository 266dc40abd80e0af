//! Handshake, options, echo, framing: behaviour shared by all algorithms.

use qnetd::proto::{Heuristics, MsgType, ReplyErrorCode as E, Vote};

use crate::support::qclient::{Req, SeqMode};
use crate::support::runner::{check, check_intended_difference};
use crate::support::scenario::{Scenario, Wait, algo, raw, req, ring};

/// The exact flow of a real 3.0.3 client (protocol.md §11.2): handshake,
/// KAP option, config with version, membership with heuristics, quorum,
/// echo.
#[test]
fn handshake_full_real_client_flow() {
    let mut s = Scenario::new("handshake_full_real_client_flow");
    s.client(1)
        .handshake()
        .config_version(&[1, 2], 3)
        .expect_reply_vote(Vote::AskLater)
        .membership_h(ring(1, 4), &[1, 2], Some(Heuristics::Pass))
        .expect_vote(Vote::Ack)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::NoChange)
        .echo()
        .expect_type(MsgType::EchoReply)
        .echo();
    check(&s);
}

/// The real client pipelines SET_OPTION and its three node lists in one go;
/// the server answers each in order (VOTE_INFO before the reply that
/// caused it).
#[test]
fn pipelined_option_and_lists_answered_in_order() {
    let mut s = Scenario::new("pipelined_option_and_lists_answered_in_order");
    s.client(1).preinit().init().pipelined(&[
        req::kap(true),
        req::config(&[1, 2]),
        req::membership(ring(1, 4), &[1, 2], None),
        req::quorum(false, &[1]),
    ]);
    s.client(2).preinit().init().pipelined(&[
        req::kap(true),
        req::config(&[1, 2]),
        req::membership(ring(1, 4), &[1, 2], Some(Heuristics::Pass)),
        req::quorum(true, &[1, 2]),
    ]);
    s.expect_votes(&[(2, Vote::Ack), (1, Vote::Ack)]);
    check(&s);
}

/// An INIT without SUPPORTED_MESSAGES / SUPPORTED_OPTIONS gets an INIT_REPLY
/// without them (and still succeeds).
#[test]
fn init_without_supported_lists_omits_them_in_reply() {
    let mut s = Scenario::new("init_without_supported_lists_omits_them_in_reply");
    s.client(1)
        .preinit()
        .init_with(|f| f.supported_lists = false)
        .expect_error(E::NoError)
        .echo()
        .expect_type(MsgType::EchoReply);
    check(&s);
}

/// SET_OPTION: heartbeat in range is stored and echoed, out of range is
/// INVALID_HEARTBEAT_INTERVAL, an empty SET_OPTION is answered with the seq
/// only, KAP is echoed, a missing seq is fine.
#[test]
fn set_option_heartbeat_and_kap_variants() {
    let mut s = Scenario::new("set_option_heartbeat_and_kap_variants");
    s.client(1)
        .preinit()
        .init()
        .set_heartbeat(5000)
        .set_heartbeat(999)
        .expect_error(E::InvalidHeartbeatInterval)
        .set_heartbeat(120_001)
        .expect_error(E::InvalidHeartbeatInterval)
        .set_heartbeat(120_000)
        .set_heartbeat(1000)
        .send(Req::SetOption {
            heartbeat: None,
            kap: None,
        })
        .expect_type(MsgType::SetOptionReply)
        .send(Req::SetOption {
            heartbeat: Some(2000),
            kap: Some(false),
        })
        .send_with(
            Req::SetOption {
                heartbeat: None,
                kap: Some(true),
            },
            SeqMode::Omit,
            Wait::Reply,
        )
        .set_kap(false)
        .echo();
    check(&s);
}

/// Intended difference (issue 11, finding 1): the reference accepts PREINIT
/// in any state, repeatedly, even after INIT (the client stays in the
/// cluster it joined, under a new name). Ours binds the cluster name at the
/// first PREINIT and closes the connection at a second one, before or after
/// INIT; the node's slot is free again at once.
#[test]
fn preinit_again_closes_before_and_after_init() {
    let mut s = Scenario::new("preinit_again_closes_before_and_after_init");
    s.client(1).preinit().preinit().expect_closed();
    s.client(2)
        .hello()
        .expect_error(E::NoError)
        .send(Req::Preinit {
            cluster: Some(b"renamed".to_vec()),
        })
        .expect_closed();
    s.client_named("n2'", 2)
        .hello()
        .expect_error(E::NoError)
        .disconnect();
    check_intended_difference(
        &s,
        "the cluster name is bound to the connection by its first PREINIT (issue 11, finding 1)",
    );
}

/// A second INIT on an initialised connection runs the INIT procedure
/// again: DUPLICATE_NODE_ID (it finds itself), and stays initialised.
#[test]
fn second_init_on_initialised_connection_is_duplicate() {
    let mut s = Scenario::new("second_init_on_initialised_connection_is_duplicate");
    s.client(1)
        .handshake()
        .init()
        .expect_error(E::DuplicateNodeId)
        .echo()
        .expect_type(MsgType::EchoReply)
        .config(&[1, 2])
        .membership(ring(1, 4), &[1, 2])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// Messages trickling in a few bytes at a time are reassembled.
#[test]
fn messages_sent_in_small_pieces_are_reassembled() {
    let mut s = Scenario::new("messages_sent_in_small_pieces_are_reassembled");
    let preinit = raw::msg(0, &[raw::seq(1), raw::tlv(1, b"testcluster")]);
    s.client(1)
        .send(Req::RawChunked {
            bytes: preinit,
            chunk: 1,
            pause_ms: 3,
        })
        .expect_type(MsgType::PreinitReply);
    s.client(1).init();
    let echo = raw::msg(8, &[raw::seq(7), raw::tlv(300, b"xyz")]);
    let two_echos = [echo.clone(), echo].concat();
    s.client(1)
        .send_with(
            Req::RawChunked {
                bytes: two_echos,
                chunk: 5,
                pause_ms: 5,
            },
            SeqMode::Auto,
            Wait::Replies(2),
        )
        .expect_type(MsgType::EchoReply);
    check(&s);
}

/// ECHO_REPLY is the request byte for byte with only the type changed,
/// unknown options included.
#[test]
fn echo_reply_is_byte_copy_with_unknown_options() {
    let mut s = Scenario::new("echo_reply_is_byte_copy_with_unknown_options");
    s.client(1).handshake();
    s.client(1)
        .raw(&raw::msg(8, &[raw::seq(1), raw::tlv(200, b"hello")]))
        .expect_type(MsgType::EchoReply)
        .raw(&raw::msg(8, &[raw::tlv(4000, &[]), raw::seq(u32::MAX)]))
        .raw(&raw::msg(8, &[raw::tlv(999, &[1, 2, 3])]))
        .raw(&raw::msg(
            8,
            &[raw::seq(3), raw::seq(4), raw::tlv(1, b"not-a-cluster")],
        ))
        .expect_type(MsgType::EchoReply);
    check(&s);
}

/// Cluster names: empty is fine, grouping is case-sensitive (so node 1 can
/// be in `testcluster` and in `TestCluster`), any bytes are accepted.
#[test]
fn cluster_names_empty_and_case_sensitive() {
    let mut s = Scenario::new("cluster_names_empty_and_case_sensitive");
    s.client(1).join(&[1, 2]).expect_reply_vote(Vote::AskLater);
    s.client_in("TestCluster", 1)
        .join(&[1, 2])
        .expect_reply_vote(Vote::AskLater);
    s.client_in("", 1)
        .join(&[1])
        .expect_reply_vote(Vote::AskLater);
    s.client_named("bin", 1)
        .cluster(&[0, 0xff, b'\n', 0x80])
        .hello()
        .expect_error(E::NoError);
    s.alone(1, 5);
    s.client_in("TestCluster", 1).membership(ring(1, 5), &[1]);
    s.client_in("", 1)
        .membership(ring(1, 5), &[1])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// The `test` algorithm: config NO_CHANGE, membership ACK, quorum NO_CHANGE,
/// ask for vote ACK, heuristics change NO_CHANGE, VOTE_INFO_REPLY nothing.
#[test]
fn test_algorithm_answers_per_message() {
    let mut s = Scenario::new("test_algorithm_answers_per_message");
    s.algorithm(algo::TEST);
    s.client(1)
        .join(&[1, 2])
        .expect_reply_vote(Vote::NoChange)
        .membership(ring(1, 4), &[1, 2])
        .expect_reply_vote(Vote::Ack)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::NoChange)
        .ask_for_vote()
        .expect_reply_vote(Vote::Ack)
        .heuristics_change(Heuristics::Fail)
        .expect_reply_vote(Vote::NoChange)
        .vote_reply_seq(1)
        .expect_silent()
        .changed_config(&[1, 2, 3])
        .expect_reply_vote(Vote::NoChange);
    check(&s);
}

/// `test` with three nodes in three partitions: everybody gets ACK, no
/// VOTE_INFO ever, nothing on disconnect.
#[test]
fn test_algorithm_3n_split_everyone_ack() {
    let mut s = Scenario::new("test_algorithm_3n_split_everyone_ack");
    s.algorithm(algo::TEST)
        .tie_breaker(crate::support::scenario::HIGHEST);
    for id in 1..=3 {
        s.client(id).join(&[1, 2, 3]);
    }
    for id in 1..=3 {
        s.client(id)
            .membership(ring(id, 8), &[id])
            .expect_reply_vote(Vote::Ack);
    }
    s.client(3).disconnect();
    s.client(1).expect_silent();
    s.client(2).ask_for_vote().expect_reply_vote(Vote::Ack);
    check(&s);
}

/// A node list carries data center ids and config versions; the server
/// accepts them (and echoes nothing of them).
#[test]
fn node_lists_with_data_center_ids_and_versions() {
    use qnetd::proto::{NodeInfo, NodeListType, NodeState};
    let mut s = Scenario::new("node_lists_with_data_center_ids_and_versions");
    s.algorithm(algo::LMS);
    let dc = |id: u32, dc: u32| NodeInfo {
        data_center_id: dc,
        ..NodeInfo::new(id)
    };
    s.client(1).handshake().send(Req::NodeList {
        kind: Some(NodeListType::InitialConfig),
        ring: None,
        config_version: Some(u64::MAX),
        quorate: None,
        nodes: vec![dc(1, 10), dc(2, 20), dc(3, 0)],
        heuristics: None,
    });
    s.client(1).send(Req::NodeList {
        kind: Some(NodeListType::Quorum),
        ring: None,
        config_version: None,
        quorate: Some(qnetd::proto::Quorate::Inquorate),
        nodes: vec![
            NodeInfo {
                node_state: NodeState::Member,
                ..NodeInfo::new(1)
            },
            NodeInfo {
                node_state: NodeState::Dead,
                ..NodeInfo::new(2)
            },
            NodeInfo {
                node_state: NodeState::Leaving,
                ..NodeInfo::new(3)
            },
        ],
        heuristics: None,
    });
    s.client(1)
        .membership(ring(1, 0x1_0000_0000), &[1])
        .expect_vote(Vote::Ack);
    check(&s);
}
