//! `2nodelms`: votes directly in NODE_LIST_REPLY, never VOTE_INFO
//! (protocol.md §6.3).

use qnetd::proto::{Heuristics, MsgType, ReplyErrorCode as E, Vote};

use crate::support::runner::check;
use crate::support::scenario::{HIGHEST, LOWEST, Scenario, algo, node_tb, ring};

fn two_node(name: &str) -> Scenario {
    let mut s = Scenario::new(name);
    s.algorithm(algo::TWO_NODE_LMS);
    s
}

/// Both nodes join and agree on one membership: ACK for both, directly.
fn joint(s: &mut Scenario) {
    s.join_all(&[1, 2], &[1, 2]);
    s.client(1)
        .membership(ring(1, 8), &[1, 2])
        .expect_reply_vote(Vote::Ack);
    s.client(2)
        .membership(ring(1, 8), &[1, 2])
        .expect_reply_vote(Vote::Ack);
}

/// Joint membership: ACK for both, directly; quorum lists NO_CHANGE.
#[test]
fn twonodelms_joint_membership_both_ack() {
    let mut s = two_node("twonodelms_joint_membership_both_ack");
    joint(&mut s);
    s.client(1)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::NoChange);
    s.client(2)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::NoChange);
    s.client(1).expect_silent();
    check(&s);
}

/// A split decided by the tie-breaker, votes in the replies. Each row:
/// scenario name, tie-breaker, the node that reports first, the winner,
/// and the steps that follow.
#[test]
fn twonodelms_split_tie_breakers() {
    let rows: [(_, _, _, _, fn(&mut Scenario)); 3] = [
        // Lowest: node 1 ACK, node 2 NACK; quorum lists follow.
        ("twonodelms_split_lowest", LOWEST, 1, 1, |s| {
            s.client(1).quorum(true, &[1]);
            s.client(2).quorum(false, &[2]);
        }),
        // Highest: node 2 wins.
        ("twonodelms_split_highest", HIGHEST, 2, 2, |_| {}),
        // Tie-breaker "node 2".
        (
            "twonodelms_split_node_id_tie_breaker",
            node_tb(2),
            1,
            2,
            |_| {},
        ),
    ];
    for (name, tb, first, winner, then) in rows {
        let vote = |id| if id == winner { Vote::Ack } else { Vote::Nack };
        let mut s = two_node(name);
        s.tie_breaker(tb);
        joint(&mut s);
        for id in [first, 3 - first] {
            s.alone(id, 12).expect_reply_vote(vote(id));
        }
        then(&mut s);
        check(&s);
    }
}

/// A config list that does not have exactly two entries is
/// UNSUPPORTED_DECISION_ALGORITHM (12), initial or changed.
#[test]
fn twonodelms_config_must_have_two_nodes() {
    let mut s = two_node("twonodelms_config_must_have_two_nodes");
    s.client(1)
        .handshake()
        .config(&[1, 2, 3])
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .config(&[1])
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .config(&[])
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .config(&[5, 6])
        .expect_reply_vote(Vote::NoChange)
        .changed_config(&[1, 2, 3])
        .expect_error(E::UnsupportedDecisionAlgorithm)
        .changed_config(&[1, 1])
        .expect_reply_vote(Vote::NoChange);
    check(&s);
}

/// Heuristics decide a split before the tie-breaker: node 2 passes, node 1
/// is undefined, so node 2 wins although the tie-breaker is "lowest".
#[test]
fn twonodelms_heuristics_beat_tie_breaker() {
    let mut s = two_node("twonodelms_heuristics_beat_tie_breaker");
    joint(&mut s);
    s.client(2)
        .membership_h(ring(2, 12), &[2], Some(Heuristics::Pass))
        .expect_reply_vote(Vote::Ack);
    s.alone(1, 12).expect_reply_vote(Vote::Nack);
    s.client(1)
        .membership_h(ring(1, 13), &[1], Some(Heuristics::Pass))
        .expect_reply_vote(Vote::Ack);
    s.client(2)
        .membership_h(ring(2, 13), &[2], Some(Heuristics::Fail))
        .expect_reply_vote(Vote::Nack);
    s.ipc("list verbose");
    check(&s);
}

/// A newcomer that never voted gets NACK (not stored) while the other node
/// holds an ACK in another ring.
#[test]
fn twonodelms_newcomer_nack_while_other_acked() {
    let mut s = two_node("twonodelms_newcomer_nack_while_other_acked");
    s.client(2)
        .join(&[1, 2])
        .membership(ring(2, 8), &[2])
        .expect_reply_vote(Vote::Ack);
    s.client(1)
        .join(&[1, 2])
        .membership(ring(1, 8), &[1])
        .expect_reply_vote(Vote::Nack)
        .ask_for_vote()
        .expect_reply_vote(Vote::AskLater)
        .membership(ring(1, 9), &[1])
        .expect_reply_vote(Vote::Nack);
    s.client(2)
        .membership(ring(1, 10), &[1, 2])
        .expect_reply_vote(Vote::Ack);
    s.client(1)
        .membership(ring(1, 10), &[1, 2])
        .expect_reply_vote(Vote::Ack);
    s.ipc("list verbose");
    check(&s);
}

/// ASK_FOR_VOTE returns the last result, ASK_LATER before any; HEURISTICS
/// _CHANGE is NO_CHANGE; a disconnect sends nothing to the other node.
#[test]
fn twonodelms_ask_for_vote_heuristics_change_disconnect() {
    let mut s = two_node("twonodelms_ask_for_vote_heuristics_change_disconnect");
    s.client(1)
        .join(&[1, 2])
        .ask_for_vote()
        .expect_reply_vote(Vote::AskLater);
    s.client(2).join(&[1, 2]);
    s.partition(ring(1, 8), &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12);
    s.client(1).ask_for_vote().expect_reply_vote(Vote::Ack);
    s.client(2)
        .ask_for_vote()
        .expect_reply_vote(Vote::Nack)
        .heuristics_change(Heuristics::Pass)
        .expect_reply_vote(Vote::NoChange)
        .ask_for_vote()
        .expect_reply_vote(Vote::Nack)
        .disconnect();
    s.client(1)
        .expect_silent()
        .membership(ring(1, 16), &[1])
        .expect_reply_vote(Vote::Ack)
        .vote_reply_seq(7)
        .expect_silent();
    check(&s);
}

/// A lone client: one-node membership is ACK (only client), a membership of
/// two nodes is ACK outright.
#[test]
fn twonodelms_single_client() {
    let mut s = two_node("twonodelms_single_client");
    s.client(1)
        .join(&[1, 2])
        .membership(ring(1, 4), &[1])
        .expect_reply_vote(Vote::Ack)
        .membership(ring(1, 5), &[1, 2])
        .expect_reply_vote(Vote::Ack)
        .quorum(false, &[1])
        .expect_type(MsgType::NodeListReply);
    check(&s);
}

/// With three clients in a 2nodelms cluster (each with a two-node config),
/// the heuristics compared are those of the *last* other client in node-id
/// order, and a newcomer is NACKed while another ring holds an ACK.
#[test]
fn twonodelms_three_clients_compare_last_other_heuristics() {
    let mut s = two_node("twonodelms_three_clients_compare_last_other_heuristics");
    joint(&mut s);
    s.client(3)
        .join(&[2, 3])
        .membership_h(ring(3, 8), &[3], Some(Heuristics::Fail))
        .expect_reply_vote(Vote::Nack);
    s.client(2)
        .membership_h(ring(2, 9), &[2], Some(Heuristics::Pass))
        .expect_reply_vote(Vote::Ack);
    // Node 1 (undefined) is compared with node 3 (FAIL), not node 2 (PASS).
    s.alone(1, 9).expect_reply_vote(Vote::Ack);
    s.client(3)
        .membership_h(ring(3, 9), &[3], Some(Heuristics::Pass))
        .expect_reply_vote(Vote::Nack);
    s.client(3).ask_for_vote().expect_reply_vote(Vote::AskLater);
    s.client(2).disconnect();
    s.alone(1, 10).expect_reply_vote(Vote::Nack);
    check(&s);
}
