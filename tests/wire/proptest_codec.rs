//! Property tests of the codec and of the engine's stream handling:
//! (a) emit → parse is the identity, (b) parsing arbitrary bytes never
//! panics, (c) a byte stream split at arbitrary points gives the same
//! output as the same stream fed whole (the TCP bug class).

use std::net::SocketAddr;

use proptest::prelude::*;
use qnetd::core::{Event, Instance, InstanceConfig, Timestamp};
use qnetd::proto::build::{self, Init};

use qnetd::proto::{
    DecisionAlgorithm, Frame, HEADER_LEN, Heuristics, Msg, MsgType, NodeInfo, NodeListType,
    NodeState, Nodes, Quorate, ReplyErrorCode, RingId, Status, TieBreaker, TieBreakerMode,
    TlsSupported, U16Array, Vote,
};

/// Owned inputs for a [`Msg`] (which borrows its byte fields).
#[derive(Debug, Clone)]
struct Owned {
    msg_type: u16,
    seq: Option<u32>,
    cluster_name: Option<Vec<u8>>,
    tls_supported: Option<u8>,
    cert_required: Option<u8>,
    supported_messages: Option<Vec<u8>>,
    reply_error_code: Option<u16>,
    sizes: (Option<u32>, Option<u32>),
    node_id: Option<u32>,
    algorithm: Option<u16>,
    heartbeat: Option<u32>,
    ring_id: Option<(u32, u64)>,
    config_version: Option<u64>,
    data_center_id: Option<u32>,
    node_state: Option<u8>,
    nodes: Vec<(u32, u32, u8)>,
    node_list_type: Option<u8>,
    vote: Option<u8>,
    quorate: Option<u8>,
    tie_breaker: Option<(u8, u32)>,
    heuristics: Option<u8>,
    kap: Option<bool>,
}

fn owned() -> impl Strategy<Value = Owned> {
    let a = (
        any::<u16>(),
        any::<Option<u32>>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(0u8..3),
        any::<Option<u8>>(),
        proptest::option::of(
            proptest::collection::vec(any::<u8>(), 0..10).prop_map(|mut v| {
                v.truncate(v.len() & !1);
                v
            }),
        ),
        any::<Option<u16>>(),
        (any::<Option<u32>>(), any::<Option<u32>>()),
    );
    let b = (
        any::<Option<u32>>(),
        any::<Option<u16>>(),
        any::<Option<u32>>(),
        any::<Option<(u32, u64)>>(),
        any::<Option<u64>>(),
        any::<Option<u32>>(),
        proptest::option::of(1u8..4),
        proptest::collection::vec((1u32.., any::<u32>(), 0u8..4), 0..8),
    );
    let c = (
        proptest::option::of(0u8..4),
        proptest::option::of(1u8..6),
        proptest::option::of(0u8..2),
        proptest::option::of((1u8..4, any::<u32>())),
        proptest::option::of(1u8..3),
        any::<Option<bool>>(),
    );
    (a, b, c).prop_map(|(a, b, c)| Owned {
        msg_type: a.0,
        seq: a.1,
        cluster_name: a.2,
        tls_supported: a.3,
        cert_required: a.4,
        supported_messages: a.5,
        reply_error_code: a.6,
        sizes: a.7,
        node_id: b.0,
        algorithm: b.1,
        heartbeat: b.2,
        ring_id: b.3,
        config_version: b.4,
        data_center_id: b.5,
        node_state: b.6,
        nodes: b.7,
        node_list_type: c.0,
        vote: c.1,
        quorate: c.2,
        tie_breaker: c.3.map(|(m, n)| (m, if m == 3 { n } else { 0 })),
        heuristics: c.4,
        kap: c.5,
    })
}

fn to_msg<'a>(o: &'a Owned, nodes: &'a [NodeInfo]) -> Msg<'a> {
    let mut m = Msg::new(MsgType::from(o.msg_type));
    m.seq = o.seq;
    m.cluster_name = o.cluster_name.as_deref();
    m.tls_supported = o.tls_supported.map(TlsSupported::from);
    m.tls_client_cert_required = o.cert_required;
    m.supported_messages = o
        .supported_messages
        .as_deref()
        .and_then(U16Array::from_be_bytes);
    m.supported_options = m.supported_messages;
    m.supported_decision_algorithms = m.supported_messages;
    m.reply_error_code = o.reply_error_code.map(ReplyErrorCode::from);
    m.server_maximum_request_size = o.sizes.0;
    m.server_maximum_reply_size = o.sizes.1;
    m.node_id = o.node_id;
    m.decision_algorithm = o.algorithm.map(DecisionAlgorithm::from);
    m.heartbeat_interval = o.heartbeat;
    m.ring_id = o.ring_id.map(|(node_id, seq)| RingId { node_id, seq });
    m.config_version = o.config_version;
    m.data_center_id = o.data_center_id;
    m.node_state = o.node_state.map(NodeState::from);
    m.nodes = Nodes::from_slice(nodes);
    m.node_list_type = o.node_list_type.map(NodeListType::from);
    m.vote = o.vote.map(Vote::from);
    m.quorate = o.quorate.map(Quorate::from);
    m.tie_breaker = o.tie_breaker.map(|(mode, node_id)| TieBreaker {
        mode: TieBreakerMode::from(mode),
        node_id,
    });
    m.heuristics = o.heuristics.map(Heuristics::from);
    m.keep_active_partition_tie_breaker = o.kap;
    m
}

/// A client session: valid messages and malformed ones mixed in.
fn session(extra_echoes: usize, garbage: &[Vec<u8>]) -> Vec<u8> {
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let push = |p: &mut Vec<Vec<u8>>, m: &Msg<'_>| p.push(build::to_bytes(m));
    push(&mut pending, &build::preinit(1, b"cluster"));
    push(&mut pending, &build::init(&Init::traced_ffsplit(2, 1)));
    push(&mut pending, &build::set_option_kap(3, true));
    push(&mut pending, &build::config_list(4, true, Some(3), &[1, 2]));
    push(
        &mut pending,
        &build::membership_list(5, RingId { node_id: 1, seq: 4 }, &[1, 2], Heuristics::Pass),
    );
    push(&mut pending, &build::vote_info_reply(1));
    push(&mut pending, &build::quorum_list(6, true, &[1, 2]));
    for (i, g) in garbage.iter().enumerate() {
        push(
            &mut pending,
            &build::echo_request(100 + u32::try_from(i).unwrap()),
        );
        // A frame with an arbitrary body: decode errors, unknown types...
        let mut f = vec![0u8, 8];
        f.extend(u32::try_from(g.len()).unwrap().to_be_bytes());
        f.extend(g);
        pending.push(f);
    }
    push(
        &mut pending,
        &build::membership_list(7, RingId { node_id: 1, seq: 8 }, &[1], Heuristics::Fail),
    );
    push(&mut pending, &build::heuristics_change(8, Heuristics::Pass));
    for i in 0..extra_echoes {
        push(
            &mut pending,
            &build::echo_request(u32::try_from(i).unwrap()),
        );
    }
    pending.concat()
}

/// Feeds `stream` in the given chunks; returns every byte sent back.
fn run(stream: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut inst = Instance::new(InstanceConfig {
        tls: TlsSupported::Unsupported,
        ..InstanceConfig::default()
    });
    let now = Timestamp::from_millis(5);
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let id = inst.accept(now, addr).unwrap();
    let mut out = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    for p in points {
        let input = inst.handle_input(now, id, &stream[start..p]);
        assert_eq!(input.consumed, p - start);
        start = p;
        while let Some(Event::Close(_)) = inst.poll_event() {}
        while let Some(id) = inst.poll_transmit() {
            let o = inst.outgoing(id).to_vec();
            inst.consume_outgoing(id, o.len());
            out.extend(o);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn emit_then_parse_is_identity(o in owned()) {
        let nodes: Vec<NodeInfo> = o
            .nodes
            .iter()
            .map(|&(node_id, data_center_id, state)| NodeInfo {
                node_id,
                data_center_id,
                node_state: NodeState::from(state),
            })
            .collect();
        let msg = to_msg(&o, &nodes);
        let mut buf = vec![0u8; msg.buffer_len()];
        let n = msg.emit(&mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(Frame::<&[u8]>::check(&buf), Status::Complete(n));
        let back = Msg::parse(&buf).unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Status::Complete(n) = Frame::<&[u8]>::check(&bytes) {
            prop_assert!(n <= bytes.len());
            let _ = Msg::parse(&bytes[..n]);
        }
        let _ = Msg::parse(&bytes);
    }

    #[test]
    fn arbitrary_payloads_never_panic(ty in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = ty.to_be_bytes().to_vec();
        frame.extend(u32::try_from(payload.len()).unwrap().to_be_bytes());
        frame.extend(&payload);
        if let Ok(msg) = Msg::parse(&frame) {
            // Whatever parses re-encodes and parses to the same value
            // (unless only unknown options were in it: see below).
            let mut buf = vec![0u8; msg.buffer_len()];
            let n = msg.emit(&mut buf).unwrap();
            if n > HEADER_LEN {
                prop_assert_eq!(Msg::parse(&buf[..n]).unwrap(), msg);
            }
        }
    }

    #[test]
    fn split_stream_gives_the_same_output(
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..4),
        echoes in 0usize..5,
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let stream = session(echoes, &garbage);
        let whole = run(&stream, &[]);
        prop_assert!(!whole.is_empty());
        let split = run(&stream, &cuts);
        prop_assert_eq!(whole, split);
    }
}

/// Fuzz regression (msg_roundtrip crash-062fa3d1): a message with only
/// unknown options parses to a message without options, whose encoding has
/// an empty payload, which does not parse. The round-trip oracle must skip
/// it, and the server answers such an echo with a byte copy.
#[test]
fn only_unknown_options_reencode_to_an_empty_payload() {
    let bytes = [0, 8, 0, 0, 0, 8, 1, 0, 0, 4, 0, 0, 0, 0x4d];
    let msg = Msg::parse(&bytes).unwrap();
    assert_eq!(msg, Msg::new(MsgType::EchoRequest));
    assert_eq!(msg.buffer_len(), HEADER_LEN);
    assert!(Msg::parse(&build::to_bytes(&msg)).is_err());
}

#[test]
fn byte_by_byte_equals_whole() {
    let stream = session(3, &[vec![0, 0, 0], vec![], vec![0, 99, 0, 0]]);
    let cuts: Vec<usize> = (0..stream.len()).collect();
    assert_eq!(run(&stream, &[]), run(&stream, &cuts));
}
