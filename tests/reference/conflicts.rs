//! Cluster checks at INIT (tie-breaker, algorithm, duplicate node id),
//! reconnection, and several clusters on one server.

use qnetd::proto::{MsgType, ReplyErrorCode as E, Vote};

use crate::support::runner::{check, check_intended_difference};
use crate::support::scenario::{HIGHEST, LOWEST, Scenario, algo, node_tb, ring};

/// A second connection claiming a node id in use is refused (17) and stays
/// un-initialised; the existing connection is not evicted.
#[test]
fn duplicate_node_id_refused_existing_kept() {
    let mut s = Scenario::new("duplicate_node_id_refused_existing_kept");
    s.join_all(&[1, 2], &[1, 2]);
    s.client_named("n1'", 1)
        .hello()
        .expect_error(E::DuplicateNodeId)
        .echo()
        .expect_error(E::InitRequired)
        .config(&[1, 2])
        .expect_error(E::InitRequired);
    s.client(1).membership(ring(1, 8), &[1, 2]);
    s.client(2)
        .membership(ring(1, 8), &[1, 2])
        .expect_vote(Vote::Ack);
    s.client(1).expect_vote(Vote::Ack);
    s.client_named("n1'", 1).disconnect();
    s.client(1).expect_silent().echo();
    s.ipc("list verbose");
    check(&s);
}

/// After a clean close the node id is free again at once; the reconnected
/// client redoes everything and gets its vote back.
#[test]
fn reconnect_after_clean_disconnect_gets_vote_again() {
    let mut s = Scenario::new("reconnect_after_clean_disconnect_gets_vote_again");
    s.join_all(&[1, 2], &[1, 2]);
    s.partition(ring(1, 8), &[1, 2]);
    s.client(1)
        .reconnect()
        .hello()
        .expect_error(E::NoError)
        .config(&[1, 2]);
    s.client(1)
        .membership(ring(1, 8), &[1, 2])
        .expect_vote(Vote::Ack);
    s.client(2).reconnect().join(&[1, 2]);
    s.client(2)
        .membership(ring(1, 8), &[1, 2])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// A client that died silently keeps its slot until dead-peer detection
/// (1.5 × heartbeat) drops it; meanwhile its replacement gets 17.
#[test]
fn duplicate_node_id_until_silent_client_expires() {
    let mut s = Scenario::new("duplicate_node_id_until_silent_client_expires");
    s.client(1).join(&[1]).membership(ring(1, 8), &[1]);
    s.client(1).silence();
    s.client_named("n1'", 1)
        .hello()
        .expect_error(E::DuplicateNodeId)
        .disconnect();
    s.client(1).wait_closed(4000).expect_closed();
    s.client_named("n1'", 1)
        .connect()
        .hello()
        .expect_error(E::NoError)
        .set_kap(true)
        .config(&[1])
        .membership(ring(1, 8), &[1])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// Tie-breaker mismatch: lowest vs highest, lowest vs node id, node id 1 vs
/// node id 2 are refused (15); the same node-id tie-breaker is accepted.
#[test]
fn tie_breaker_mismatch_refused() {
    let mut s = Scenario::new("tie_breaker_mismatch_refused");
    s.client(1).handshake();
    s.client(2)
        .tie_breaker(HIGHEST)
        .hello()
        .expect_error(E::TieBreakerDiffersFromOtherNodes)
        .disconnect();
    s.client(3)
        .tie_breaker(node_tb(1))
        .hello()
        .expect_error(E::TieBreakerDiffersFromOtherNodes)
        .disconnect();
    s.client_in("other", 1).tie_breaker(node_tb(1)).handshake();
    s.client_in("other", 2)
        .tie_breaker(node_tb(2))
        .hello()
        .expect_error(E::TieBreakerDiffersFromOtherNodes)
        .init_with(|f| f.tie_breaker = Some(node_tb(1)))
        .expect_error(E::NoError);
    s.client_in("other", 3)
        .tie_breaker(LOWEST)
        .hello()
        .expect_error(E::TieBreakerDiffersFromOtherNodes)
        .disconnect();
    check(&s);
}

/// Algorithm mismatch is refused (16); the checks run in order tie-breaker,
/// algorithm, node id, against every client already in the cluster.
#[test]
fn algorithm_mismatch_and_check_precedence() {
    let mut s = Scenario::new("algorithm_mismatch_and_check_precedence");
    s.algorithm(algo::LMS);
    s.client(1).handshake();
    s.client(3).handshake();
    s.client(2)
        .algorithm(algo::FFSPLIT)
        .hello()
        .expect_error(E::AlgorithmDiffersFromOtherNodes)
        .init_with(|f| f.algorithm = Some(0))
        .expect_error(E::AlgorithmDiffersFromOtherNodes)
        .init_with(|f| f.tie_breaker = Some(HIGHEST))
        .expect_error(E::TieBreakerDiffersFromOtherNodes)
        .init_with(|f| f.algorithm = Some(3))
        .expect_error(E::NoError);
    s.client_named("n3'", 3)
        .algorithm(algo::TWO_NODE_LMS)
        .hello()
        .expect_error(E::AlgorithmDiffersFromOtherNodes)
        .init_with(|f| f.algorithm = Some(3))
        .expect_error(E::DuplicateNodeId)
        .init_with(|f| {
            f.algorithm = Some(1);
            f.tie_breaker = Some(node_tb(3));
        })
        .expect_error(E::TieBreakerDiffersFromOtherNodes)
        .disconnect();
    check(&s);
}

/// The same node id in different clusters is fine; clusters are fully
/// independent, and a cluster disappears with its last client (so the next
/// client may choose another algorithm).
#[test]
fn clusters_are_independent_and_recreated() {
    let mut s = Scenario::new("clusters_are_independent_and_recreated");
    s.client(1).join(&[1, 2]);
    s.client_in("other", 1)
        .algorithm(algo::LMS)
        .tie_breaker(HIGHEST)
        .join(&[1, 2]);
    s.alone(1, 8).expect_vote(Vote::Ack);
    s.client_in("other", 1)
        .membership(ring(1, 8), &[1])
        .expect_vote(Vote::Ack);
    s.client(1).disconnect();
    s.client_in("other", 1).expect_silent();
    s.client(2)
        .algorithm(algo::TWO_NODE_LMS)
        .tie_breaker(HIGHEST)
        .join(&[1, 2])
        .expect_type(MsgType::NodeListReply)
        .membership(ring(2, 9), &[2])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// Several clusters with different algorithms split at the same time; each
/// decides on its own.
#[test]
fn several_clusters_mixed_algorithms_at_once() {
    let mut s = Scenario::new("several_clusters_mixed_algorithms_at_once");
    // lms last, so that its two timers (HB/4 = 500 ms) fire during the wait.
    let clusters = [
        ("ff", algo::FFSPLIT),
        ("two", algo::TWO_NODE_LMS),
        ("tst", algo::TEST),
        ("lms", algo::LMS),
    ];
    for (name, a) in clusters {
        s.algorithm(a).heartbeat(2000);
        s.client_in(name, 1).join(&[1, 2]);
        s.client_in(name, 2).join(&[1, 2]);
    }
    for (name, _) in clusters {
        s.client_in(name, 1).membership(ring(1, 8), &[1, 2]);
        s.client_in(name, 2).membership(ring(1, 8), &[1, 2]);
    }
    for (name, _) in clusters {
        s.client_in(name, 1).membership(ring(1, 12), &[1]);
        s.client_in(name, 2).membership(ring(2, 12), &[2]);
    }
    s.wait_votes_of(&["lms/n1", "lms/n2"]);
    for (name, _) in clusters {
        s.client_in(name, 1).quorum(true, &[1]);
        s.client_in(name, 2).quorum(false, &[2]);
    }
    s.client_in("ff", 1).expect_vote(Vote::Ack);
    s.client_in("ff", 2).expect_vote(Vote::Nack);
    s.client_in("lms", 1).expect_vote(Vote::Ack);
    s.client_in("lms", 2).expect_vote(Vote::Nack);
    s.client_in("two", 1).expect_vote(Vote::Ack);
    s.client_in("two", 2).expect_vote(Vote::Nack);
    s.client_in("tst", 2).expect_vote(Vote::Ack);
    s.ipc("list verbose");
    check(&s);
}

/// Intended difference (issue 11, finding 1): the first PREINIT binds the
/// cluster name to the connection. The reference overwrites the name on a
/// second PREINIT (so a certificate checked for one cluster can admit the
/// connection to another); ours closes the connection, and the client
/// joins nothing. A real qdevice never sends PREINIT twice.
#[test]
fn second_preinit_closes_the_connection() {
    let mut s = Scenario::new("second_preinit_closes_the_connection");
    s.client(1).join(&[1, 2]);
    s.client_in("other", 2)
        .preinit()
        .cluster(b"testcluster")
        .preinit()
        .expect_closed();
    s.client(1).echo().expect_type(MsgType::EchoReply);
    s.ipc("list verbose");
    check_intended_difference(
        &s,
        "the cluster name is bound to the connection by its first PREINIT (issue 11, finding 1)",
    );
}
