//! Sans-IO session tests: the engine driven through bytes with a fake clock.
//! Each test pins a behaviour of the reference server (protocol.md section in
//! the test name's doc comment).

use crate::support::harness::{Harness, lowest, ring};
use qnetd::cert::name::PeerNames;
use qnetd::core::InstanceConfig;
use qnetd::proto::build::{self, Init};
use qnetd::proto::{
    DecisionAlgorithm as Alg, Heuristics as H, Msg, MsgType as T, ReplyErrorCode as E, RingId,
    TieBreaker, TieBreakerMode, TlsSupported, Vote,
};

fn cfg(f: impl FnOnce(&mut InstanceConfig)) -> InstanceConfig {
    let mut c = InstanceConfig {
        tls: TlsSupported::Unsupported,
        ..InstanceConfig::default()
    };
    f(&mut c);
    c
}

/// INIT of an ffsplit client with node id 1 (8 s heartbeat, lowest
/// tie-breaker).
fn node1_init(seq: u32, ring_id: RingId) -> Msg<'static> {
    build::init(&Init {
        ring_id,
        ..Init::traced_ffsplit(seq, 1)
    })
}

/// Client 1 of a server with TLS `tls`: it sent PREINIT for `cluster` and
/// STARTTLS, and its TLS handshake presented a certificate naming `names`.
fn tls_client(tls: TlsSupported, cluster: &[u8], names: PeerNames) -> Harness {
    let mut h = Harness::new(cfg(|c| c.tls = tls));
    h.connect(1);
    h.send(1, &build::preinit(1, cluster));
    h.expect(1, T::PreinitReply);
    assert!(
        h.send_bytes(1, &build::to_bytes(&build::starttls(2)))
            .start_tls
    );
    let id = h.id(1);
    h.inst.tls_established(id, Some(names));
    h
}

/// §4.7: the normal flow of one client; replies echo the sequence numbers.
#[test]
fn handshake_and_heartbeat() {
    let mut h = Harness::plain();
    h.connect(1);
    h.send(1, &build::preinit(1, b"c"));
    let r = h.expect(1, T::PreinitReply);
    assert_eq!(r.seq(), Some(1));
    assert_eq!(r.msg().tls_supported, Some(TlsSupported::Unsupported));
    assert_eq!(r.msg().tls_client_cert_required, Some(1));
    h.send(1, &node1_init(2, ring(1, 4)));
    let r = h.expect(1, T::InitReply);
    assert_eq!(r.error(), Some(E::NoError));
    assert_eq!(r.seq(), Some(2));
    assert_eq!(r.msg().server_maximum_request_size, Some(32768));
    for seq in 1..=5 {
        h.send(1, &build::echo_request(seq));
        assert_eq!(h.expect(1, T::EchoReply).seq(), Some(seq));
    }
    assert_eq!(h.inst.client_count(), 1);
    assert_eq!(h.inst.cluster_count(), 1);
}

/// §4.5: a silent client is dropped after 1.5 × its heartbeat, silently;
/// every message restarts the timer.
#[test]
fn dead_peer_detection() {
    let mut h = Harness::plain();
    h.join_with(1, b"c", 1, Alg::Ffsplit, lowest(), 1000, ring(1, 1));
    h.advance(1000);
    h.send(1, &build::echo_request(1));
    h.expect(1, T::EchoReply);
    // 1.5 x heartbeat after the last message.
    h.expect_closed_after(1, 1500);
    h.expect_nothing(1);
    assert_eq!(
        h.inst.cluster_count(),
        0,
        "cluster deleted with its last client"
    );
}

/// §4.5: before INIT the compiled-in 120 s heartbeat applies: 180 s.
#[test]
fn dead_peer_detection_before_init() {
    let mut h = Harness::plain();
    h.connect(1);
    h.send(1, &build::preinit(1, b"c"));
    h.expect(1, T::PreinitReply);
    h.expect_closed_after(1, 180_000);
}

/// §9.2: `dpd_enabled=off` keeps silent clients forever; the coefficient
/// scales the timeout.
#[test]
fn dead_peer_detection_settings() {
    let mut h = Harness::new(cfg(|c| c.dpd_enabled = false));
    h.join_with(1, b"c", 1, Alg::Ffsplit, lowest(), 1000, ring(1, 1));
    h.advance(10_000_000);
    assert!(!h.is_closed(1));
    let mut h = Harness::new(cfg(|c| c.dpd_interval_coefficient = 2.0));
    h.join_with(1, b"c", 1, Alg::Ffsplit, lowest(), 1000, ring(1, 1));
    h.expect_closed_after(1, 2000);
}

/// §2.7: SET_OPTION changes the heartbeat and re-arms DPD from now.
#[test]
fn set_option_heartbeat() {
    let mut h = Harness::plain();
    h.join_with(1, b"c", 1, Alg::Ffsplit, lowest(), 8000, ring(1, 1));
    let mut m = build::set_option_kap(3, true);
    m.heartbeat_interval = Some(2000);
    h.send(1, &m);
    let r = h.expect(1, T::SetOptionReply);
    assert_eq!(r.msg().heartbeat_interval, Some(2000));
    assert_eq!(r.msg().keep_active_partition_tie_breaker, Some(true));
    h.expect_closed_after(1, 3000);
    // Out of range: SERVER_ERROR, nothing changed.
    let mut h = Harness::plain();
    h.join(1, b"c", Alg::Ffsplit, ring(1, 1));
    let mut m = build::set_option_kap(3, true);
    m.heartbeat_interval = Some(10);
    h.send(1, &m);
    assert_eq!(
        h.expect(1, T::ServerError).error(),
        Some(E::InvalidHeartbeatInterval)
    );
}

/// §7.2: conflicts at INIT, in the reference's order; the connection stays
/// open and the existing client keeps its place.
#[test]
fn init_conflicts() {
    let mut h = Harness::plain();
    h.join(1, b"c", Alg::Ffsplit, ring(1, 1));
    let highest = TieBreaker {
        mode: TieBreakerMode::Highest,
        node_id: 0,
    };
    let node1 = TieBreaker {
        mode: TieBreakerMode::NodeId,
        node_id: 1,
    };
    /// (client, cluster, node id, algorithm, tie-breaker, INIT_REPLY error)
    type Case = (u32, &'static [u8], u32, Alg, TieBreaker, E);
    let cases: [Case; 6] = [
        (2, b"c", 1, Alg::Ffsplit, lowest(), E::DuplicateNodeId),
        (
            3,
            b"c",
            2,
            Alg::Ffsplit,
            highest,
            E::TieBreakerDiffersFromOtherNodes,
        ),
        (
            4,
            b"c",
            2,
            Alg::Ffsplit,
            node1,
            E::TieBreakerDiffersFromOtherNodes,
        ),
        (
            5,
            b"c",
            2,
            Alg::Lms,
            lowest(),
            E::AlgorithmDiffersFromOtherNodes,
        ),
        // Tie-breaker is checked before the algorithm.
        (
            6,
            b"c",
            2,
            Alg::Lms,
            highest,
            E::TieBreakerDiffersFromOtherNodes,
        ),
        // The same node id in another cluster is fine; names are case-sensitive.
        (7, b"C", 1, Alg::Lms, highest, E::NoError),
    ];
    for (key, cluster, node_id, alg, tie_breaker, want) in cases {
        assert_eq!(
            h.join_with(key, cluster, node_id, alg, tie_breaker, 8000, ring(1, 1)),
            want,
            "client {key}"
        );
    }
    for k in 2..=6 {
        assert!(!h.is_closed(k), "client {k} closed");
        h.send(k, &build::echo_request(77));
        assert_eq!(h.expect(k, T::ServerError).error(), Some(E::InitRequired));
    }
    assert_eq!(h.inst.cluster_count(), 2);
    // After the first client disconnects, its node id is free again.
    let id1 = h.id(1);
    h.inst.disconnect(h.now, id1);
    assert_eq!(
        h.join_with(8, b"c", 1, Alg::Lms, highest, 8000, ring(1, 1)),
        E::NoError
    );
}

/// §4.3: the error precedence quirks of INIT.
#[test]
fn init_error_precedence() {
    let mut h = Harness::plain();
    h.connect(1);
    // Without PREINIT and without heartbeat: INVALID_HEARTBEAT_INTERVAL.
    let mut m = node1_init(1, ring(1, 1));
    m.heartbeat_interval = None;
    h.send(1, &m);
    assert_eq!(
        h.expect(1, T::InitReply).error(),
        Some(E::InvalidHeartbeatInterval)
    );
    // Without PREINIT, algorithm 9: UNSUPPORTED_DECISION_ALGORITHM.
    m.heartbeat_interval = Some(8000);
    m.decision_algorithm = Some(Alg::Unknown(9));
    h.send(1, &m);
    assert_eq!(
        h.expect(1, T::InitReply).error(),
        Some(E::UnsupportedDecisionAlgorithm)
    );
    // Without PREINIT otherwise: PREINIT_REQUIRED.
    m.decision_algorithm = Some(Alg::Ffsplit);
    h.send(1, &m);
    assert_eq!(h.expect(1, T::InitReply).error(), Some(E::PreinitRequired));
    // After PREINIT, a missing tie-breaker: DOESNT_CONTAIN_REQUIRED_OPTION.
    h.send(1, &build::preinit(2, b"c"));
    h.expect(1, T::PreinitReply);
    m.tie_breaker = None;
    h.send(1, &m);
    assert_eq!(
        h.expect(1, T::InitReply).error(),
        Some(E::DoesntContainRequiredOption)
    );
    // A second INIT on an initialised connection is refused as a duplicate.
    m.tie_breaker = Some(lowest());
    h.send(1, &m);
    assert_eq!(h.expect(1, T::InitReply).error(), Some(E::NoError));
    m.node_id = Some(5);
    h.send(1, &m);
    assert_eq!(h.expect(1, T::InitReply).error(), Some(E::DuplicateNodeId));
    assert_eq!(h.inst.clusters()[0].members.len(), 1);
}

/// §6.2 and §11.3: ffsplit 50:50 split: NACK first, ACK only after every
/// NACKed client confirmed; on disconnect the survivor gets a fresh ACK.
#[test]
fn ffsplit_split_nack_before_ack() {
    let mut h = Harness::plain();
    for k in [1, 2] {
        h.join(k, b"c", Alg::Ffsplit, ring(1, 8));
        assert_eq!(h.config(k, &[1, 2]).vote(), Some(Vote::AskLater));
    }
    // Node 1's membership alone: node 2 has none yet -> not stable.
    let got = h.membership(1, ring(1, 8), &[1, 2], H::Undefined);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vote(), Some(Vote::WaitForReply));
    // Node 2's membership: both ACK; its VOTE_INFO precedes its reply.
    let got = h.membership(2, ring(1, 8), &[1, 2], H::Undefined);
    assert_eq!(
        got.iter().map(|g| g.ty()).collect::<Vec<_>>(),
        [T::VoteInfo, T::NodeListReply]
    );
    assert_eq!(got[0].vote(), Some(Vote::Ack));
    assert_eq!(got[1].vote(), Some(Vote::NoChange));
    h.reply_vote_info(2, &got[0]);
    let v1 = h.expect(1, T::VoteInfo);
    assert_eq!(v1.vote(), Some(Vote::Ack));
    h.reply_vote_info(1, &v1);
    // Split: 1 -> {1} ring 1.c, 2 -> {2} ring 2.c.
    let got = h.membership(1, ring(1, 0xc), &[1], H::Undefined);
    assert_eq!(got[0].vote(), Some(Vote::WaitForReply));
    let got = h.membership(2, ring(2, 0xc), &[2], H::Undefined);
    assert_eq!(got[0].ty(), T::VoteInfo);
    assert_eq!(got[0].vote(), Some(Vote::Nack));
    assert_eq!(got[0].ring(), Some(ring(2, 0xc)));
    h.expect_nothing(1);
    // ACK for node 1 only after node 2 confirmed its NACK.
    h.reply_vote_info(2, &got[0]);
    let ack = h.expect(1, T::VoteInfo);
    assert_eq!(ack.vote(), Some(Vote::Ack));
    assert_eq!(ack.ring(), Some(ring(1, 0xc)));
    h.reply_vote_info(1, &ack);
    // Node 2 goes away: node 1 gets a fresh ACK.
    let id2 = h.id(2);
    h.inst.disconnect(h.now, id2);
    h.drain();
    assert_eq!(h.expect(1, T::VoteInfo).vote(), Some(Vote::Ack));
    // A stale VOTE_INFO_REPLY is ignored (no reply at all).
    h.send(1, &build::vote_info_reply(1));
    h.expect_nothing(1);
}

/// §6.2, golden "kap4": keep-active-partition keeps the vote with the
/// partition that had it, unless one client disables it.
#[test]
fn ffsplit_keep_active_partition() {
    for (kap1, expect_first_pair) in [(true, Vote::Nack), (false, Vote::Ack)] {
        let mut h = Harness::plain();
        for k in [3, 4] {
            h.join(k, b"c", Alg::Ffsplit, ring(3, 1));
            let s = h.seq(k);
            h.send(k, &build::set_option_kap(s, true));
            h.expect(k, T::SetOptionReply);
            h.config(k, &[1, 2, 3, 4]);
        }
        h.membership(3, ring(3, 1), &[3, 4], H::Undefined);
        for g in h.membership(4, ring(3, 1), &[3, 4], H::Undefined) {
            if g.ty() == T::VoteInfo {
                h.reply_vote_info(4, &g);
            }
        }
        let v3 = h.expect(3, T::VoteInfo);
        assert_eq!(v3.vote(), Some(Vote::Ack), "3,4 alone get the vote");
        h.reply_vote_info(3, &v3);
        for k in [1, 2] {
            h.join(k, b"c", Alg::Ffsplit, ring(1, 2));
            let s = h.seq(k);
            h.send(k, &build::set_option_kap(s, k != 1 || kap1));
            h.expect(k, T::SetOptionReply);
            h.config(k, &[1, 2, 3, 4]);
        }
        // Answer every VOTE_INFO until quiet, recording the last vote per node.
        let mut last = [Vote::Undefined; 5];
        let mut pending: Vec<(u32, crate::support::harness::Got)> = Vec::new();
        for k in [1, 2] {
            pending.extend(
                h.membership(k, ring(1, 2), &[1, 2], H::Undefined)
                    .into_iter()
                    .map(|g| (k, g)),
            );
        }
        for _ in 0..4 {
            for (k, g) in std::mem::take(&mut pending) {
                if g.ty() == T::VoteInfo {
                    last[k as usize] = g.vote().unwrap();
                    h.reply_vote_info(k, &g);
                }
            }
            for k in 1..=4 {
                pending.extend(h.recv_all(k).into_iter().map(|g| (k, g)));
            }
        }
        let other = if expect_first_pair == Vote::Ack {
            Vote::Nack
        } else {
            Vote::Ack
        };
        assert_eq!(
            &last[1..],
            [expect_first_pair, expect_first_pair, other, other],
            "kap1={kap1}"
        );
    }
}

/// §6.2: heuristics decide a 50:50 split before the tie-breaker.
#[test]
fn ffsplit_heuristics_beat_tie_breaker() {
    let mut h = Harness::plain();
    for k in [1, 2] {
        h.join(k, b"c", Alg::Ffsplit, ring(1, 8));
        h.config(k, &[1, 2]);
    }
    h.membership(1, ring(1, 8), &[1, 2], H::Pass);
    h.membership(2, ring(1, 8), &[1, 2], H::Pass);
    for k in [1, 2] {
        for g in h.recv_all(k) {
            if g.ty() == T::VoteInfo {
                h.reply_vote_info(k, &g);
            }
        }
    }
    h.membership(1, ring(1, 9), &[1], H::Fail);
    let got = h.membership(2, ring(2, 9), &[2], H::Pass);
    // Node 1 (the tie-breaker) failed its heuristics: it gets the NACK.
    assert!(h.recv_all(2).is_empty());
    assert!(got.iter().all(|g| g.vote() != Some(Vote::Nack)));
    let nack = h.expect(1, T::VoteInfo);
    assert_eq!(nack.vote(), Some(Vote::Nack));
    h.reply_vote_info(1, &nack);
    assert_eq!(h.expect(2, T::VoteInfo).vote(), Some(Vote::Ack));
}

/// §6.4: lms waits while rings disagree, then its timer (heartbeat / 4)
/// sends the decision as VOTE_INFO.
#[test]
fn lms_timer_decides_a_split() {
    let mut h = Harness::plain();
    for k in [1, 2] {
        h.join(k, b"c", Alg::Lms, ring(1, 8));
        assert_eq!(h.config(k, &[1, 2]).vote(), Some(Vote::NoChange));
        let got = h.membership(k, ring(1, 8), &[1, 2], H::Undefined);
        assert_eq!(got[0].vote(), Some(Vote::Ack));
    }
    let got = h.membership(1, ring(1, 0xc), &[1], H::Undefined);
    assert_eq!(got[0].vote(), Some(Vote::WaitForReply));
    let got = h.membership(2, ring(2, 0xc), &[2], H::Undefined);
    assert_eq!(got[0].vote(), Some(Vote::WaitForReply));
    h.advance(1999);
    h.expect_nothing(1);
    h.advance(1);
    assert_eq!(h.expect(1, T::VoteInfo).vote(), Some(Vote::Ack));
    assert_eq!(h.expect(2, T::VoteInfo).vote(), Some(Vote::Nack));
    // Timer VOTE_INFOs have their own sequence counter, starting at 1.
    let s = h.seq(1);
    h.send(1, &build::ask_for_vote(s));
    assert_eq!(h.expect(1, T::AskForVoteReply).vote(), Some(Vote::Ack));
}

/// §6.3: 2nodelms answers directly; a config list of 3 nodes is refused.
#[test]
fn two_node_lms() {
    let mut h = Harness::plain();
    for k in [1, 2] {
        h.join(k, b"c", Alg::TwoNodeLms, ring(1, 8));
        h.config(k, &[1, 2]);
        let got = h.membership(k, ring(1, 8), &[1, 2], H::Undefined);
        assert_eq!(got[0].vote(), Some(Vote::Ack));
    }
    assert_eq!(
        h.membership(1, ring(1, 0xc), &[1], H::Undefined)[0].vote(),
        Some(Vote::Ack)
    );
    assert_eq!(
        h.membership(2, ring(2, 0xc), &[2], H::Undefined)[0].vote(),
        Some(Vote::Nack)
    );
    let s = h.seq(1);
    h.send(1, &build::config_list(s, false, None, &[1, 2, 3]));
    assert_eq!(
        h.expect(1, T::ServerError).error(),
        Some(E::UnsupportedDecisionAlgorithm)
    );
}

/// §1.4: a client that does not read is disconnected when its queue of
/// `max_client_send_buffers` messages is full; others are not affected.
#[test]
fn send_queue_overflow_closes_only_that_client() {
    let mut h = Harness::new(cfg(|c| c.max_client_send_buffers = 3));
    h.join(1, b"c", Alg::Ffsplit, ring(1, 1));
    h.join(2, b"c", Alg::Ffsplit, ring(1, 1));
    let id1 = h.id(1);
    // Feed echoes without draining client 1's output.
    for seq in 1..=3 {
        let bytes = build::to_bytes(&build::echo_request(seq));
        let _ = h.inst.handle_input(h.now, id1, &bytes);
    }
    assert_eq!(h.inst.outgoing(id1).len(), 3 * 14);
    let bytes = build::to_bytes(&build::echo_request(4));
    let _ = h.inst.handle_input(h.now, id1, &bytes);
    h.drain();
    assert!(h.is_closed(1));
    // Client 2 is re-evaluated after client 1 left (a VOTE_INFO) and still
    // served.
    h.recv_all(2);
    h.send(2, &build::echo_request(1));
    assert_eq!(h.expect(2, T::EchoReply).seq(), Some(1));
}

/// §4.5: a DPD coefficient that puts the pre-INIT timer beyond the 5 h
/// timer limit makes the reference close every connection at once.
#[test]
fn dpd_coefficient_beyond_timer_range_refuses_connections() {
    let mut h = Harness::new(cfg(|c| c.dpd_interval_coefficient = 1000.0));
    let addr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(
        h.inst.accept(h.now, addr),
        Err(qnetd::core::AcceptError::DpdTimer)
    );
    let mut h = Harness::new(cfg(|c| c.dpd_interval_coefficient = 150.0));
    assert!(
        h.inst.accept(h.now, addr).is_ok(),
        "150 x 120 s = 5 h is still in range"
    );
}

/// §1.1: `-m` caps connections.
#[test]
fn max_clients() {
    let mut h = Harness::new(cfg(|c| c.max_clients = 2));
    h.connect(1);
    h.connect(2);
    let addr = "127.0.0.1:1".parse().unwrap();
    assert!(h.inst.accept(h.now, addr).is_err());
    let id1 = h.id(1);
    h.inst.disconnect(h.now, id1);
    assert!(h.inst.accept(h.now, addr).is_ok());
}

/// §1.5: over-long and unknown messages are consumed and answered without
/// a sequence number; the stream stays in sync even when split.
#[test]
fn skipped_messages_keep_the_stream_in_sync() {
    let mut h = Harness::plain();
    h.connect(1);
    let mut long = vec![0u8, 8, 0, 0, 0x9c, 0x40];
    long.resize(6 + 40_000, 0);
    long.extend(build::to_bytes(&build::echo_request(77)));
    for chunk in long.chunks(999) {
        h.send_bytes(1, chunk);
    }
    let e = h.expect(1, T::ServerError);
    assert_eq!((e.error(), e.seq()), (Some(E::MessageTooLong), None));
    let e = h.expect(1, T::ServerError);
    assert_eq!((e.error(), e.seq()), (Some(E::InitRequired), Some(77)));
    h.send_bytes(1, &[0, 99, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 9]);
    let e = h.expect(1, T::ServerError);
    assert_eq!((e.error(), e.seq()), (Some(E::UnsupportedMessage), None));
}

/// §5.1: `-s req` refuses clear-text INIT with TLS_REQUIRED (connection
/// kept); STARTTLS stops input processing right after itself.
#[test]
fn tls_required_and_starttls() {
    let mut h = Harness::new(cfg(|c| c.tls = TlsSupported::Required));
    h.connect(1);
    h.send(1, &build::preinit(1, b"c"));
    assert_eq!(
        h.expect(1, T::PreinitReply).msg().tls_supported,
        Some(TlsSupported::Required)
    );
    h.send(1, &node1_init(2, ring(1, 1)));
    let e = h.expect(1, T::ServerError);
    assert_eq!((e.error(), e.seq()), (Some(E::TlsRequired), Some(2)));
    let mut bytes = build::to_bytes(&build::starttls(3));
    bytes.extend_from_slice(&[0x16, 3, 1, 0, 5]); // start of a ClientHello
    let input = h.send_bytes(1, &bytes);
    assert!(input.start_tls);
    assert_eq!(input.consumed, 14, "bytes after STARTTLS belong to TLS");
    // With TLS off, STARTTLS closes the connection.
    let mut h = Harness::plain();
    h.connect(1);
    h.send(1, &build::preinit(1, b"c"));
    h.expect(1, T::PreinitReply);
    let input = h.send_bytes(1, &build::to_bytes(&build::starttls(2)));
    assert!(!input.start_tls);
    assert!(h.is_closed(1));
}

/// §5.4: the client certificate must name the cluster (SAN, else CN,
/// case-insensitively); a mismatch closes silently at the first message.
#[test]
fn client_certificate_name_check() {
    for (names, accepted) in [
        (
            PeerNames {
                common_name: Some("TESTCLUSTER".into()),
                ..PeerNames::default()
            },
            true,
        ),
        (
            PeerNames {
                common_name: Some("other".into()),
                ..PeerNames::default()
            },
            false,
        ),
        (
            PeerNames {
                dns_names: vec!["testcluster".into()],
                ip_addresses: vec![],
                common_name: Some("other".into()),
            },
            true,
        ),
        (
            PeerNames {
                dns_names: vec!["other".into()],
                ip_addresses: vec![],
                common_name: Some("testcluster".into()),
            },
            false,
        ),
    ] {
        let mut h = tls_client(TlsSupported::Supported, b"testcluster", names.clone());
        h.send(1, &node1_init(3, ring(1, 1)));
        if accepted {
            assert_eq!(
                h.expect(1, T::InitReply).error(),
                Some(E::NoError),
                "{names:?}"
            );
        } else {
            assert!(h.is_closed(1), "{names:?}");
            h.expect_nothing(1);
        }
    }
}

/// §9.3: at shutdown clients are dropped without any message.
#[test]
fn shutdown_sends_nothing() {
    let mut h = Harness::plain();
    for k in [1, 2] {
        h.join(k, b"c", Alg::Ffsplit, ring(1, 8));
        h.config(k, &[1, 2]);
    }
    let closed = h.inst.shutdown(h.now);
    assert_eq!(closed.len(), 2);
    h.drain();
    assert_eq!(h.inst.client_count(), 0);
    assert_eq!(h.inst.cluster_count(), 0);
    assert!(h.inst.poll_transmit().is_none());
}

/// A TLS client that sent PREINIT for `clusterA`, STARTTLS, presented a
/// certificate with CN `cn`, and had its certificate marked verified by a
/// message before INIT (answered INIT_REQUIRED).
fn verified_tls_client_of_cluster_a(cn: &str) -> Harness {
    let mut h = tls_client(
        TlsSupported::Required,
        b"clusterA",
        PeerNames {
            common_name: Some(cn.into()),
            ..PeerNames::default()
        },
    );
    h.send(1, &build::echo_request(3));
    assert_eq!(h.expect(1, T::ServerError).error(), Some(E::InitRequired));
    h
}

/// Intended difference (issue 11, finding 1): a certificate for cluster A
/// never admits the connection to cluster B. The reference overwrites the
/// name on a second PREINIT after the certificate was found valid; we
/// close the connection at a second PREINIT, as for STARTTLS twice.
#[test]
fn certificate_for_one_cluster_never_admits_another() {
    let init = |seq| build::to_bytes(&node1_init(seq, ring(1, 1)));
    let mut h = verified_tls_client_of_cluster_a("clusterA");
    h.send(1, &build::preinit(4, b"clusterB"));
    assert!(h.is_closed(1), "a second PREINIT must close the connection");
    h.expect_nothing(1);
    h.send_bytes(1, &init(5));
    h.expect_nothing(1);
    assert_eq!(h.inst.cluster_count(), 0, "joined a cluster after all");
    // The same connection with one PREINIT joins cluster A as before.
    let mut h = verified_tls_client_of_cluster_a("clustera");
    h.send_bytes(1, &init(4));
    assert_eq!(h.expect(1, T::InitReply).error(), Some(E::NoError));
}

/// The status generation (what the MQTT mirror compares): moved by a
/// connect, a join, a node list and a disconnect, never by heartbeats.
#[test]
fn status_generation_moves_on_changes_not_on_heartbeats() {
    let mut h = Harness::plain();
    let g0 = h.inst.status_generation();
    h.join(1, b"c", Alg::Ffsplit, ring(1, 1));
    let g1 = h.inst.status_generation();
    assert_ne!(g0, g1);
    for _ in 0..5 {
        let seq = h.seq(1);
        h.send(1, &build::echo_request(seq));
        h.expect(1, T::EchoReply);
    }
    assert_eq!(h.inst.status_generation(), g1, "heartbeats moved it");
    h.config(1, &[1]);
    let g2 = h.inst.status_generation();
    assert_ne!(g1, g2);
    let id = h.id(1);
    h.inst.disconnect(h.now, id);
    assert_ne!(h.inst.status_generation(), g2);
}
