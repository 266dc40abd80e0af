//! Error replies: state violations, INIT field checks, framing errors,
//! decode errors, missing options. The connection always stays open (except
//! STARTTLS on a TLS-less server).

use qnetd::proto::{MsgType, ReplyErrorCode as E};

use crate::support::golden::{self, Dir, Step as GStep};
use crate::support::qclient::{InitFields, Req, SeqMode};
use crate::support::runner::check;
use crate::support::scenario::{Scenario, Wait, raw, ring};

/// Every client→server message of the `errors` scenario of
/// `golden_traces.txt`, replayed byte for byte, one fresh connection per
/// case (cases from #16 on run after a normal handshake, as captured).
#[test]
fn golden_trace_error_cases_replayed() {
    let mut s = Scenario::new("golden_trace_error_cases_replayed");
    let cases: Vec<_> = golden::load()
        .into_iter()
        .filter(|c| c.name.starts_with("errors #"))
        .collect();
    assert!(cases.len() >= 25, "golden error cases: {}", cases.len());
    for case in &cases {
        let number: u32 = case.name["errors #".len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("case number");
        let label = format!("case{number}");
        let mut c = s.client_named(&label, 1);
        if number >= 16 {
            c = c.handshake();
        }
        for step in &case.steps {
            if let GStep::Msg {
                dir: Dir::ToServer,
                bytes,
                ..
            } = step
            {
                c = c.raw(bytes);
            }
        }
        c.disconnect();
    }
    check(&s);
}

/// Every client message that needs INIT gets INIT_REQUIRED before it (also
/// after a PREINIT), with the request's seq.
#[test]
fn messages_before_init_get_init_required() {
    let mut s = Scenario::new("messages_before_init_get_init_required");
    let c = s.client(1);
    let c = c
        .set_heartbeat(2000)
        .expect_error(E::InitRequired)
        .echo()
        .config(&[1, 2])
        .membership(ring(1, 1), &[1])
        .quorum(true, &[1])
        .ask_for_vote()
        .send_with(Req::VoteInfoReply, SeqMode::Fixed(1), Wait::Reply)
        .expect_error(E::InitRequired)
        .heuristics_change(qnetd::proto::Heuristics::Pass)
        .expect_error(E::InitRequired);
    c.preinit()
        .set_kap(true)
        .expect_error(E::InitRequired)
        .config(&[1])
        .expect_error(E::InitRequired)
        .send_with(Req::Echo, SeqMode::Omit, Wait::Reply)
        .expect_error(E::ErrorDecodingMsg);
    check(&s);
}

/// INIT field checks and their odd precedence (protocol.md §4.3): missing
/// fields are DOESNT_CONTAIN_REQUIRED_OPTION, a bad heartbeat or algorithm
/// overrides an earlier error.
#[test]
fn init_field_checks_and_precedence() {
    let mut s = Scenario::new("init_field_checks_and_precedence");
    // Without PREINIT.
    s.client(1)
        .init()
        .expect_error(E::PreinitRequired)
        .init_with(|f| f.heartbeat = None)
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| f.algorithm = Some(9))
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .init_with(|f| f.heartbeat = Some(10))
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| {
            *f = InitFields {
                supported_lists: false,
                node_id: None,
                algorithm: None,
                heartbeat: None,
                tie_breaker: None,
                ring: None,
            }
        });
    // After PREINIT.
    s.client(1)
        .preinit()
        .send(Req::Init(InitFields {
            supported_lists: false,
            node_id: Some(1),
            algorithm: None,
            heartbeat: None,
            tie_breaker: None,
            ring: None,
        }))
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| f.node_id = None)
        .expect_error(E::DoesntContainRequiredOption)
        .init_with(|f| f.ring = None)
        .expect_error(E::DoesntContainRequiredOption)
        .init_with(|f| f.tie_breaker = None)
        .expect_error(E::DoesntContainRequiredOption)
        .init_with(|f| f.algorithm = None)
        .expect_error(E::DoesntContainRequiredOption)
        .init_with(|f| {
            f.algorithm = None;
            f.heartbeat = Some(500);
        })
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| f.algorithm = Some(4))
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .init_with(|f| {
            f.node_id = None;
            f.algorithm = Some(65535);
        })
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .init_with(|f| f.node_id = Some(0))
        .expect_error(E::NoError)
        .echo();
    check(&s);
}

/// Heartbeat bounds in INIT are inclusive [1000, 120000].
#[test]
fn init_heartbeat_bounds_inclusive() {
    let mut s = Scenario::new("init_heartbeat_bounds_inclusive");
    for (label, hb) in [("hb999", 999), ("hb0", 0), ("hb120001", 120_001)] {
        s.client_named(label, 1)
            .heartbeat(hb)
            .hello()
            .expect_error(E::InvalidHeartbeatInterval)
            .disconnect();
    }
    for (label, hb) in [("hb1000", 1000), ("hb120000", 120_000)] {
        s.client_named(label, 1)
            .heartbeat(hb)
            .hello()
            .expect_error(E::NoError)
            .echo()
            .disconnect();
    }
    check(&s);
}

/// Server-to-client message types sent by a client get UNEXPECTED_MESSAGE
/// (no state check: also before PREINIT), seq echoed when present.
#[test]
fn server_to_client_types_are_unexpected() {
    let mut s = Scenario::new("server_to_client_types_are_unexpected");
    let mut c = s.client(1);
    for ty in [1u16, 4, 5] {
        c = c.raw(&raw::msg(ty, &[raw::seq(100 + u32::from(ty))]));
    }
    c = c.expect_error(E::UnexpectedMessage).handshake();
    for ty in [1u16, 4, 5, 7, 9, 11, 13, 14, 17] {
        c = c.raw(&raw::msg(
            ty,
            &[raw::seq(u32::from(ty)), raw::tlv(19, &[1])],
        ));
    }
    c.expect_error(E::UnexpectedMessage)
        .raw(&raw::msg(14, &[raw::tlv(200, &[])]))
        .echo()
        .expect_type(MsgType::EchoReply);
    check(&s);
}

/// Unknown message types and over-long messages are skipped (body
/// consumed) and answered without a seq; the 32768-byte boundary is
/// inclusive; the connection stays usable.
#[test]
fn unknown_types_and_oversized_messages_are_skipped() {
    let mut s = Scenario::new("unknown_types_and_oversized_messages_are_skipped");
    let mut c = s.client(1);
    for ty in [18u16, 99, 0xffff] {
        c = c.raw(&raw::msg(ty, &[raw::seq(9)]));
    }
    c = c.expect_error(E::UnsupportedMessage).handshake();
    // 6 + 8 + 4 + 32750 = 32768 bytes: accepted, echoed in full.
    let max_echo = raw::msg(8, &[raw::seq(1), raw::tlv(500, &vec![0x5a; 32750])]);
    assert_eq!(max_echo.len(), 32768);
    c = c.raw(&max_echo).expect_type(MsgType::EchoReply);
    let too_long = raw::msg(8, &[raw::seq(2), raw::tlv(500, &vec![0x5a; 32751])]);
    c = c.raw(&too_long).expect_error(E::MessageTooLong);
    c = c
        .raw(&raw::sized(10, 40_000))
        .expect_error(E::MessageTooLong)
        .raw(&raw::sized(99, 33_000))
        .raw(&raw::sized(3, 65_536));
    c.echo()
        .expect_type(MsgType::EchoReply)
        .config(&[1])
        .expect_type(MsgType::NodeListReply);
    check(&s);
}

/// Malformed options: trailing bytes, short payloads, options running past
/// the end, wrong widths, out-of-range enum values, bad node infos. All are
/// ERROR_DECODING_MSG, with the seq when it was decoded before the fault.
#[test]
fn malformed_options_get_decoding_error() {
    let mut s = Scenario::new("malformed_options_get_decoding_error");
    let seq = raw::seq;
    let tlv = raw::tlv;
    let ni = raw::node_info;
    let list = |ty: u8| tlv(18, &[ty]);
    let cases: Vec<Vec<u8>> = vec![
        // Framing inside the payload.
        raw::msg(0, &[seq(1), tlv(1, b"testcluster"), vec![0, 0]]),
        raw::msg(8, &[vec![0]]),
        raw::msg(8, &[vec![0, 0, 0]]),
        raw::msg(8, &[]),
        raw::msg(0, &[seq(3), vec![0, 1, 0, 50, b'a', b'b', b'c']]),
        raw::msg(0, &[vec![0, 1, 0, 50, b'a'], seq(4)]),
        // Wrong widths.
        raw::msg(8, &[tlv(0, &[0, 0, 1])]),
        raw::msg(10, &[seq(5), list(0), tlv(14, &[0; 7])]),
        raw::msg(10, &[seq(6), list(2), tlv(13, &[0; 11])]),
        raw::msg(10, &[seq(7), tlv(18, &[0, 0])]),
        raw::msg(3, &[seq(8), tlv(4, &[0, 1, 2])]),
        raw::msg(3, &[seq(9), tlv(21, &[1, 0, 0, 0])]),
        // Out-of-range values.
        raw::msg(3, &[seq(10), tlv(21, &[9, 0, 0, 0, 0])]),
        raw::msg(3, &[seq(11), tlv(21, &[0, 0, 0, 0, 1])]),
        raw::msg(8, &[seq(12), tlv(19, &[0])]),
        raw::msg(8, &[seq(13), tlv(19, &[6])]),
        raw::msg(16, &[seq(14), tlv(22, &[0])]),
        raw::msg(16, &[seq(15), tlv(22, &[3])]),
        raw::msg(6, &[seq(16), tlv(23, &[2])]),
        raw::msg(0, &[seq(17), tlv(2, &[3]), tlv(1, b"x")]),
        raw::msg(10, &[seq(18), list(4)]),
        raw::msg(10, &[seq(19), list(3), tlv(20, &[2])]),
        raw::msg(10, &[seq(20), list(3), tlv(16, &[0])]),
        // Node infos.
        raw::msg(10, &[seq(21), list(0), ni(&[tlv(15, &[0, 0, 0, 1])])]),
        raw::msg(10, &[seq(22), list(0), ni(&[tlv(9, &[0, 0, 0, 0])])]),
        raw::msg(
            10,
            &[
                seq(23),
                list(3),
                ni(&[tlv(9, &[0, 0, 0, 1]), tlv(16, &[0])]),
            ],
        ),
        raw::msg(
            10,
            &[
                seq(24),
                list(3),
                ni(&[tlv(9, &[0, 0, 0, 1]), tlv(16, &[4])]),
            ],
        ),
        raw::msg(10, &[seq(25), list(0), ni(&[tlv(9, &[0, 0, 1])])]),
        raw::msg(
            10,
            &[seq(26), list(0), ni(&[tlv(9, &[0, 0, 0, 1]), vec![0]])],
        ),
        raw::msg(10, &[seq(27), list(0), ni(&[])]),
    ];
    let mut c = s.client(1).handshake();
    for bytes in &cases {
        c = c.raw(bytes);
    }
    c.expect_error(E::ErrorDecodingMsg)
        .echo()
        .expect_type(MsgType::EchoReply);
    check(&s);
}

/// Unknown options, inner unknown options of a node info, repeated options
/// (the later wins) and a node info with extra state are all fine.
#[test]
fn unknown_and_repeated_options_are_tolerated() {
    let mut s = Scenario::new("unknown_and_repeated_options_are_tolerated");
    let seq = raw::seq;
    let tlv = raw::tlv;
    let ni = raw::node_info;
    let id = |n: u32| tlv(9, &n.to_be_bytes());
    s.client(1)
        .raw(&raw::msg(
            0,
            &[
                seq(1),
                tlv(1, b"wrong"),
                tlv(77, b"?"),
                tlv(1, b"testcluster"),
            ],
        ))
        .init()
        .raw(&raw::msg(
            10,
            &[
                seq(3),
                tlv(18, &[2]),
                tlv(18, &[0]),
                ni(&[id(1), tlv(99, &[1, 2, 3])]),
                ni(&[id(2), tlv(15, &[0, 0, 0, 7])]),
                ni(&[id(2)]),
                tlv(1000, &[]),
            ],
        ))
        .expect_type(MsgType::NodeListReply)
        .raw(&raw::msg(
            10,
            &[
                seq(4),
                tlv(18, &[2]),
                tlv(13, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9]),
                ni(&[id(1)]),
                tlv(22, &[2]),
                tlv(22, &[1]),
            ],
        ))
        // Config [1, 2, 2] (the later NODE_LIST_TYPE won), membership [1]:
        // no majority of an odd config.
        .expect_vote(qnetd::proto::Vote::Nack);
    check(&s);
}

/// Missing required options after INIT: node list without type / seq,
/// membership without ring id, quorum without quorate, ask for vote and
/// vote info reply without seq, heuristics change without heuristics or
/// seq, PREINIT without cluster name.
#[test]
fn missing_required_options_after_init() {
    let mut s = Scenario::new("missing_required_options_after_init");
    let c = s.client(1).handshake();
    let no_type = Req::NodeList {
        kind: None,
        ring: None,
        config_version: None,
        quorate: None,
        nodes: crate::support::qclient::nodes(&[1, 2]),
        heuristics: None,
    };
    c.send(no_type)
        .expect_error(E::DoesntContainRequiredOption)
        .send_with(
            crate::support::scenario::req::config(&[1, 2]),
            SeqMode::Omit,
            Wait::Reply,
        )
        .expect_error(E::DoesntContainRequiredOption)
        .raw(&raw::msg(10, &[raw::seq(50), raw::tlv(18, &[2])]))
        .raw(&raw::msg(10, &[raw::seq(51), raw::tlv(18, &[3])]))
        .send_with(Req::AskForVote, SeqMode::Omit, Wait::Reply)
        .send_with(Req::VoteInfoReply, SeqMode::Omit, Wait::Reply)
        .send(Req::HeuristicsChange(None))
        .send_with(
            Req::HeuristicsChange(Some(qnetd::proto::Heuristics::Pass)),
            SeqMode::Omit,
            Wait::Reply,
        )
        .send(Req::Preinit { cluster: None })
        .expect_error(E::DoesntContainRequiredOption)
        .config(&[1, 2])
        .expect_type(MsgType::NodeListReply);
    check(&s);
}

/// STARTTLS before PREINIT is PREINIT_REQUIRED; after PREINIT on a server
/// without TLS (`-s off`) the server closes the connection silently.
#[test]
fn starttls_without_tls_closes_connection() {
    let mut s = Scenario::new("starttls_without_tls_closes_connection");
    s.client(1)
        .send(Req::StartTls)
        .expect_error(E::PreinitRequired)
        .preinit()
        .send_with(Req::StartTls, SeqMode::Auto, Wait::Closed)
        .expect_closed();
    s.client(2)
        .handshake()
        .send_with(Req::StartTls, SeqMode::Auto, Wait::Closed)
        .expect_closed();
    s.client(3).join(&[3]).expect_type(MsgType::NodeListReply);
    check(&s);
}

/// INIT_REPLY echoes SUPPORTED_MESSAGES / SUPPORTED_OPTIONS only when the
/// INIT had them, each on its own, whatever their content.
#[test]
fn init_reply_echoes_only_the_lists_sent() {
    let mut s = Scenario::new("init_reply_echoes_only_the_lists_sent");
    let fields = |msgs: Option<&[u8]>, opts: Option<&[u8]>, seq: u32| {
        let mut parts = vec![raw::seq(seq)];
        if let Some(m) = msgs {
            parts.push(raw::tlv(4, m));
        }
        if let Some(o) = opts {
            parts.push(raw::tlv(5, o));
        }
        parts.extend([
            raw::tlv(9, &1u32.to_be_bytes()),
            raw::tlv(11, &[0, 1]),
            raw::tlv(12, &1000u32.to_be_bytes()),
            raw::tlv(21, &[1, 0, 0, 0, 0]),
            raw::tlv(13, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4]),
        ]);
        raw::msg(3, &parts)
    };
    s.client(1)
        .preinit()
        .raw(&fields(Some(&[0, 0, 0, 3]), None, 2))
        .expect_error(E::NoError)
        .raw(&fields(None, Some(&[]), 3))
        .expect_error(E::DuplicateNodeId);
    s.client(2)
        .preinit()
        .raw(&fields(Some(&[]), Some(&[0, 23]), 2))
        .expect_error(E::DuplicateNodeId)
        .disconnect();
    check(&s);
}
