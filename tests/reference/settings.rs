//! Server settings and limits given on the command line: both servers get
//! the same `-S` / flags and must enforce them alike.

use qnetd::proto::{MsgType, ReplyErrorCode as E, Vote};

use crate::support::qclient::{Req, SeqMode, nodes};
use crate::support::runner::{check, check_intended_difference};
use crate::support::scenario::{Scenario, Wait, algo, raw, ring};

/// `-m 2`: a third connection is accepted and closed at once, without a
/// word; once a slot is free, a new connection works. Both clients are past
/// INIT: with one before INIT, ours closes that one instead of the new
/// connection (an intended difference, `tests/daemon/loopback.rs`).
#[test]
fn max_clients_closes_extra_connections() {
    let mut s = Scenario::new("max_clients_closes_extra_connections");
    s.args(&["-m", "2"]).algorithm(algo::TEST);
    s.client(1).join(&[1, 2, 3]);
    s.client(2).join(&[1, 2, 3]);
    s.client(3).connect().wait_closed(2000).expect_closed();
    s.client(2).disconnect();
    s.client(3)
        .connect()
        .join(&[1, 2, 3])
        .expect_reply_vote(Vote::NoChange);
    check(&s);
}

/// `-c off`: PREINIT_REPLY says client certificates are not required.
#[test]
fn client_cert_not_required_flag() {
    let mut s = Scenario::new("client_cert_not_required_flag");
    s.args(&["-c", "off"]);
    s.client(1).preinit().expect_type(MsgType::PreinitReply);
    check(&s);
}

/// `max_client_send_size=100`: PREINIT_REPLY (24 bytes) fits, INIT_REPLY
/// (140 bytes) does not, so the client is disconnected; without the
/// supported lists INIT_REPLY is 48 bytes and fits, a big echo does not.
#[test]
fn small_max_client_send_size_disconnects() {
    let mut s = Scenario::new("small_max_client_send_size_disconnects");
    s.setting("max_client_send_size=100");
    s.client(1)
        .preinit()
        .send_with(
            Req::Init(crate::support::qclient::InitFields {
                supported_lists: true,
                node_id: Some(1),
                algorithm: Some(1),
                heartbeat: Some(1000),
                tie_breaker: Some(crate::support::scenario::LOWEST),
                ring: Some(ring(1, 4)),
            }),
            SeqMode::Auto,
            Wait::Reply,
        )
        .expect_closed();
    s.client(2)
        .preinit()
        .init_with(|f| f.supported_lists = false)
        .expect_error(E::NoError)
        .raw(&raw::msg(8, &[raw::seq(1), raw::tlv(300, &[7; 60])]))
        .expect_type(MsgType::EchoReply)
        .raw(&raw::msg(8, &[raw::seq(2), raw::tlv(300, &[7; 120])]))
        .expect_closed();
    check(&s);
}

/// `max_client_receive_size=200`: advertised in INIT_REPLY, and a message
/// above it is skipped with MESSAGE_TOO_LONG (200 bytes pass, 201 do not).
#[test]
fn small_max_client_receive_size() {
    let mut s = Scenario::new("small_max_client_receive_size");
    s.setting("max_client_receive_size=200");
    s.client(1).handshake();
    let echo = |len: usize, seq: u32| raw::msg(8, &[raw::seq(seq), raw::tlv(300, &vec![1; len])]);
    assert_eq!(echo(182, 0).len(), 200);
    s.client(1)
        .raw(&echo(182, 1))
        .expect_type(MsgType::EchoReply)
        .raw(&echo(183, 2))
        .expect_error(E::MessageTooLong)
        .config(&(1..=20).collect::<Vec<u32>>())
        .expect_error(E::MessageTooLong)
        .config(&[1, 2])
        .expect_type(MsgType::NodeListReply);
    check(&s);
}

/// `heartbeat_interval_min` / `_max` settings bound INIT and SET_OPTION.
#[test]
fn heartbeat_interval_bounds_settings() {
    let mut s = Scenario::new("heartbeat_interval_bounds_settings");
    s.setting("heartbeat_interval_min=2000")
        .setting("heartbeat_interval_max=3000");
    s.client(1)
        .heartbeat(1000)
        .hello()
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| f.heartbeat = Some(3001))
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| f.heartbeat = Some(3000))
        .expect_error(E::NoError)
        .set_heartbeat(1999)
        .expect_error(E::InvalidHeartbeatInterval)
        .set_heartbeat(2000)
        .expect_type(MsgType::SetOptionReply);
    check(&s);
}

/// Intended difference (issue 11, finding 3): node lists longer than
/// corosync's 384-processor limit fit in a message and the reference
/// accepts them; ours refuses them with ERROR_DECODING_MSG (the connection
/// stays open), which bounds the work per message.
#[test]
fn node_lists_beyond_384_entries() {
    let mut s = Scenario::new("node_lists_beyond_384_entries");
    s.algorithm(algo::LMS);
    let big: Vec<u32> = (1..=600).collect();
    s.client(1)
        .handshake()
        .config(&big)
        .expect_error(E::ErrorDecodingMsg)
        .membership(ring(1, 8), &big)
        .expect_error(E::ErrorDecodingMsg)
        .send(Req::NodeList {
            kind: Some(qnetd::proto::NodeListType::Quorum),
            ring: None,
            config_version: None,
            quorate: Some(qnetd::proto::Quorate::Quorate),
            nodes: nodes(&big),
            heuristics: None,
        })
        .expect_error(E::ErrorDecodingMsg)
        .config(&[1])
        .expect_type(MsgType::NodeListReply);
    check_intended_difference(
        &s,
        "node lists are capped at corosync's 384 nodes (issue 11, finding 3)",
    );
}

/// A long cluster name (1000 bytes) is just bytes.
#[test]
fn long_cluster_name() {
    let mut s = Scenario::new("long_cluster_name");
    let name = vec![b'c'; 1000];
    s.client(1)
        .cluster(&name)
        .join(&[1])
        .membership(ring(1, 4), &[1])
        .expect_vote(Vote::Ack);
    s.client(2).cluster(&name).join(&[1, 2]);
    check(&s);
}

/// The dead-peer timer cannot exceed 18 000 000 ms (5 h). With
/// `dpd_interval_coefficient=100` and `heartbeat_interval_max=200000`, a
/// heartbeat of 180000 ms is the largest INIT / SET_OPTION accepts
/// (exactly 5 h); 180001 is INVALID_HEARTBEAT_INTERVAL.
#[test]
fn dpd_interval_limit_bounds_heartbeat() {
    let mut s = Scenario::new("dpd_interval_limit_bounds_heartbeat");
    s.setting("dpd_interval_coefficient=100")
        .setting("heartbeat_interval_max=200000");
    s.client(1)
        .heartbeat(180_001)
        .hello()
        .expect_error(E::InvalidHeartbeatInterval)
        .init_with(|f| f.heartbeat = Some(180_000))
        .expect_error(E::NoError)
        .set_heartbeat(180_001)
        .expect_error(E::InvalidHeartbeatInterval)
        .set_heartbeat(179_999)
        .expect_type(MsgType::SetOptionReply);
    check(&s);
}

/// The dead-peer timer of a fresh connection uses 120000 ms × the
/// coefficient; with `dpd_interval_coefficient=1000` that exceeds the 5 h
/// timer limit, so the reference cannot arm it and drops every connection
/// at once.
#[test]
fn dpd_coefficient_too_large_for_pre_init_timer() {
    let mut s = Scenario::new("dpd_coefficient_too_large_for_pre_init_timer");
    s.setting("dpd_interval_coefficient=1000");
    s.client(1).connect().expect_closed();
    s.client(2).preinit();
    check(&s);
}
