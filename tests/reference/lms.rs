//! `lms` (last man standing): ring agreement, partitions, scores, sizes,
//! tie-breaker, and the algorithm timer (heartbeat / 4) that sends
//! VOTE_INFO once the rings agree (protocol.md §6.4).
//!
//! Heartbeat 4000 ms: the timer runs every 1000 ms, much longer than the
//! few script steps between a split and its `wait_votes`, so each timer
//! VOTE_INFO lands in the step that waits for it.

use qnetd::proto::{Heuristics, TieBreaker, Vote};

use crate::support::runner::check;
use crate::support::scenario::{HIGHEST, LOWEST, Scenario, algo, node_tb, ring};

const LMS_HB: u32 = 4000;
const PASS: Option<Heuristics> = Some(Heuristics::Pass);
const FAIL: Option<Heuristics> = Some(Heuristics::Fail);

/// An lms scenario (heartbeat `LMS_HB`) where nodes `1..=n` join with
/// config `1..=n`.
fn lms(name: &str, n: u32) -> Scenario {
    lms_tb(name, n, LOWEST)
}

/// Nodes `1..=n` (tie-breaker `tb`) agree on ring `1.8`, then `split`
/// reports the split, and the timers of all of them vote.
fn lms_split(name: &str, n: u32, tb: TieBreaker, split: impl FnOnce(&mut Scenario)) -> Scenario {
    let mut s = lms_tb(name, n, tb);
    let all: Vec<u32> = (1..=n).collect();
    s.partition(ring(1, 8), &all);
    split(&mut s);
    s.wait_votes(&all);
    s
}

/// As [`lms`], with tie-breaker `tb`.
fn lms_tb(name: &str, n: u32, tb: TieBreaker) -> Scenario {
    let mut s = Scenario::new(name);
    s.algorithm(algo::LMS).heartbeat(LMS_HB).tie_breaker(tb);
    let all: Vec<u32> = (1..=n).collect();
    s.join_all(&all, &all);
    s
}

/// All nodes in one ring: ACK for everybody, directly.
#[test]
fn lms_2n_joint_membership_both_ack() {
    let mut s = lms("lms_2n_joint_membership_both_ack", 2);
    s.partition(ring(1, 8), &[1, 2]);
    s.client(1).expect_reply_vote(Vote::Ack);
    s.client(2).expect_reply_vote(Vote::Ack);
    s.client(1)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::Ack);
    s.sleep(700);
    s.client(1).expect_silent();
    check(&s);
}

/// 2-node split, lowest: both membership lists WAIT_FOR_REPLY (the other
/// still reports the old ring), then the timers vote ACK for 1 and NACK for
/// 2 in VOTE_INFO; quorum lists then return the votes directly.
#[test]
fn lms_2n_split_timer_votes_lowest() {
    let mut s = lms_split("lms_2n_split_timer_votes_lowest", 2, LOWEST, |s| {
        s.alone(1, 12).expect_reply_vote(Vote::WaitForReply);
        s.alone(2, 12).expect_reply_vote(Vote::WaitForReply);
    });
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Nack)]);
    s.client(1).quorum(true, &[1]).expect_reply_vote(Vote::Ack);
    s.client(2)
        .quorum(false, &[2])
        .expect_reply_vote(Vote::Nack);
    s.client(2).ask_for_vote().expect_reply_vote(Vote::Nack);
    s.ipc("list verbose");
    check(&s);
}

/// 2-node split, highest tie-breaker.
#[test]
fn lms_2n_split_highest() {
    let mut s = lms_split("lms_2n_split_highest", 2, HIGHEST, |s| {
        s.alone(2, 12);
        s.alone(1, 12);
    });
    s.expect_votes(&[(1, Vote::Nack), (2, Vote::Ack)]);
    check(&s);
}

/// Tie-breaker "node id": only the tie-breaker node itself gets ACK, its
/// partition peers get NACK.
#[test]
fn lms_4n_node_id_tie_breaker_only_that_node_acks() {
    let mut s = lms_split(
        "lms_4n_node_id_tie_breaker_only_that_node_acks",
        4,
        node_tb(3),
        |s| {
            s.partition(ring(1, 12), &[1, 2]);
            s.partition(ring(3, 12), &[3, 4]);
        },
    );
    s.expect_votes(&[(3, Vote::Ack), (4, Vote::Nack), (1, Vote::Nack)]);
    for id in 1..=4 {
        s.client(id).quorum(id >= 3, &[id]);
    }
    check(&s);
}

/// 3 nodes, 2:1 split: the larger partition wins whatever the tie-breaker.
#[test]
fn lms_3n_2_1_split_larger_partition_wins() {
    let mut s = lms_split(
        "lms_3n_2_1_split_larger_partition_wins",
        3,
        node_tb(1),
        |s| {
            s.alone(1, 12);
            s.partition(ring(2, 12), &[2, 3]);
        },
    );
    s.expect_votes(&[(1, Vote::Nack), (2, Vote::Ack), (3, Vote::Ack)]);
    check(&s);
}

/// 4 nodes, 2:2 split: equal scores and sizes, the lowest tie-breaker picks
/// the partition of node 1.
#[test]
fn lms_4n_2_2_split_lowest() {
    let mut s = lms_split("lms_4n_2_2_split_lowest", 4, LOWEST, |s| {
        s.partition(ring(1, 12), &[1, 2]);
        s.partition(ring(3, 12), &[3, 4]);
    });
    s.expect_votes(&[(2, Vote::Ack), (3, Vote::Nack)]);
    check(&s);
}

/// 5 nodes, 3:2 split, then the 3 split again 2:1 (2:2:1 overall).
#[test]
fn lms_5n_3_2_then_2_2_1() {
    let mut s = lms_split("lms_5n_3_2_then_2_2_1", 5, LOWEST, |s| {
        s.partition(ring(1, 12), &[1, 2]);
        s.partition(ring(3, 12), &[3, 4, 5]);
    });
    s.expect_votes(&[(1, Vote::Nack), (5, Vote::Ack)]);
    s.partition(ring(3, 16), &[3, 4]);
    s.alone(5, 16);
    s.wait_votes(&[3, 4, 5]);
    for id in 1..=5 {
        s.client(id).ask_for_vote();
    }
    check(&s);
}

/// Heuristics add to a partition's score: {1,2} both PASS (score 4) beat
/// the larger undefined {3,4,5} (score 3).
#[test]
fn lms_heuristics_score_beats_size() {
    let mut s = lms_split("lms_heuristics_score_beats_size", 5, LOWEST, |s| {
        for id in [1, 2] {
            s.client(id).membership_h(ring(1, 12), &[1, 2], PASS);
        }
        s.partition(ring(3, 12), &[3, 4, 5]);
    });
    s.expect_votes(&[(1, Vote::Ack), (3, Vote::Nack)]);
    check(&s);
}

/// FAIL heuristics lower the score: {1,2} with one FAIL (score 1) lose
/// against {3,4} (score 2).
#[test]
fn lms_heuristics_fail_lowers_score() {
    let mut s = lms_split("lms_heuristics_fail_lowers_score", 4, LOWEST, |s| {
        s.client(1).membership_h(ring(1, 12), &[1, 2], FAIL);
        s.client(2).membership(ring(1, 12), &[1, 2]);
        s.partition(ring(3, 12), &[3, 4]);
    });
    s.expect_votes(&[(1, Vote::Nack), (4, Vote::Ack)]);
    check(&s);
}

/// Quorum lists and ASK_FOR_VOTE re-run the algorithm on the stored ring
/// and the stored heuristics; HEURISTICS_CHANGE itself is NO_CHANGE but its
/// value counts in the next run (a membership list resets it).
#[test]
fn lms_quorum_ask_and_heuristics_change() {
    let mut s = lms("lms_quorum_ask_and_heuristics_change", 2);
    s.client(1)
        .ask_for_vote()
        .quorum(false, &[1])
        .heuristics_change(Heuristics::Fail)
        .expect_reply_vote(Vote::NoChange);
    s.partition(ring(1, 8), &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12);
    s.wait_votes(&[1, 2]);
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Nack)]);
    s.client(1)
        .heuristics_change(Heuristics::Fail)
        .expect_reply_vote(Vote::NoChange)
        .quorum(true, &[1])
        .expect_reply_vote(Vote::Nack);
    s.client(2)
        .quorum(true, &[2])
        .expect_reply_vote(Vote::Ack)
        .heuristics_change(Heuristics::Pass)
        .ask_for_vote()
        .expect_reply_vote(Vote::Ack);
    s.client(1)
        .heuristics_change(Heuristics::Pass)
        .ask_for_vote()
        .expect_reply_vote(Vote::Ack);
    // Node 1's run still sees its stored PASS (tie, lowest wins: ACK); the
    // list then stores undefined heuristics, so node 2 (PASS) now wins.
    s.alone(1, 12).expect_reply_vote(Vote::Ack);
    s.client(2).ask_for_vote().expect_reply_vote(Vote::Ack);
    s.ipc("list verbose");
    check(&s);
}

/// After a node leaves, nothing is sent to the survivor; its next
/// membership list (alone) is a single partition: ACK.
#[test]
fn lms_node_leaves_survivor_acks_on_next_list() {
    let mut s = lms("lms_node_leaves_survivor_acks_on_next_list", 3);
    s.partition(ring(1, 8), &[1, 2, 3]);
    s.client(3).disconnect();
    s.client(1).expect_silent();
    s.client(1)
        .membership(ring(1, 12), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2)
        .membership(ring(1, 12), &[1, 2])
        .expect_reply_vote(Vote::Ack);
    s.wait_votes(&[1]);
    s.client(1).expect_vote(Vote::Ack);
    s.client(2).disconnect();
    s.alone(1, 16).expect_reply_vote(Vote::Ack);
    check(&s);
}

/// Dead-peer detection drops a silent lms client (after 1.5 × heartbeat);
/// the others hear nothing until their next list.
#[test]
fn lms_dpd_drops_silent_client() {
    let mut s = Scenario::new("lms_dpd_drops_silent_client");
    s.algorithm(algo::LMS).heartbeat(1000);
    s.join_all(&[1, 2], &[1, 2]);
    s.partition(ring(1, 8), &[1, 2]);
    s.client(2).silence().wait_closed(4000).expect_closed();
    s.client(1)
        .expect_silent()
        .membership(ring(1, 12), &[1])
        .expect_reply_vote(Vote::Ack);
    check(&s);
}

/// A newcomer that never voted gets NACK (not stored) while another
/// partition holds an ACK; once its ring is shared it gets ACK.
#[test]
fn lms_newcomer_nack_while_other_partition_active() {
    let mut s = Scenario::new("lms_newcomer_nack_while_other_partition_active");
    s.algorithm(algo::LMS).heartbeat(LMS_HB);
    s.join_all(&[2, 3], &[1, 2, 3]);
    s.partition(ring(2, 8), &[2, 3]);
    s.client(2).expect_reply_vote(Vote::Ack);
    s.client(1)
        .join(&[1, 2, 3])
        .membership(ring(1, 9), &[1])
        .expect_reply_vote(Vote::Nack)
        .ask_for_vote()
        .expect_reply_vote(Vote::Nack);
    s.partition(ring(1, 12), &[1, 2, 3]);
    s.wait_votes(&[1]);
    s.client(1).ask_for_vote();
    s.client(2).ask_for_vote();
    s.ipc("list verbose");
    check(&s);
}

/// Clients whose stored ring has seq 0 form no partition: alone, that is
/// "no partition" (WAIT_FOR_REPLY, timer keeps running) until a real ring
/// arrives.
#[test]
fn lms_ring_seq_zero_is_no_partition() {
    let mut s = Scenario::new("lms_ring_seq_zero_is_no_partition");
    s.algorithm(algo::LMS).heartbeat(2000).init_ring(ring(1, 0));
    s.client(1)
        .join(&[1, 2])
        .quorum(true, &[1])
        .expect_reply_vote(Vote::WaitForReply)
        .ask_for_vote()
        .expect_reply_vote(Vote::WaitForReply);
    s.sleep(1200);
    s.client(1)
        .expect_silent()
        .membership(ring(1, 0), &[1])
        .expect_reply_vote(Vote::WaitForReply)
        .membership(ring(1, 1), &[1]);
    s.wait_votes(&[1]);
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}

/// A partition reporting mixed rings waits (timer) until its members agree;
/// the re-armed timer then sends the vote.
#[test]
fn lms_ring_disagreement_waits_for_timer() {
    let mut s = lms("lms_ring_disagreement_waits_for_timer", 3);
    s.partition(ring(1, 8), &[1, 2, 3]);
    s.client(1)
        .membership(ring(1, 12), &[1, 2, 3])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2)
        .membership(ring(1, 12), &[1, 2, 3])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(3)
        .membership(ring(1, 12), &[1, 2, 3])
        .expect_reply_vote(Vote::Ack);
    s.wait_votes(&[1, 2]);
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}

/// The algorithm timer runs every heartbeat / 4 of the client's *current*
/// heartbeat: after SET_OPTION lowers it from 8000 to 1000 ms, the split
/// is decided within 250 ms, not 2 s.
#[test]
fn lms_timer_follows_set_option_heartbeat() {
    let mut s = Scenario::new("lms_timer_follows_set_option_heartbeat");
    s.algorithm(algo::LMS).heartbeat(8000);
    for id in [1, 2] {
        s.client(id).join(&[1, 2]).set_heartbeat(1000);
    }
    s.partition(ring(1, 8), &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12);
    s.wait_votes_within(&[1, 2], 1200);
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Nack)]);
    check(&s);
}

/// A client that leaves with its timer pending sends nothing; the other
/// node's pending timer still decides (now alone: ACK).
#[test]
fn lms_disconnect_with_pending_timer() {
    let mut s = lms("lms_disconnect_with_pending_timer", 2);
    s.partition(ring(1, 8), &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12)
        .expect_reply_vote(Vote::WaitForReply)
        .disconnect();
    s.wait_votes(&[1]);
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}

/// ASK_FOR_VOTE while the rings disagree is WAIT_FOR_REPLY and starts the
/// timer, which sends the vote once they agree.
#[test]
fn lms_ask_for_vote_while_rings_disagree() {
    let mut s = lms("lms_ask_for_vote_while_rings_disagree", 2);
    s.partition(ring(1, 8), &[1, 2]);
    s.client(1).membership(ring(1, 12), &[1, 2]);
    s.client(1)
        .ask_for_vote()
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2)
        .membership(ring(1, 12), &[1, 2])
        .expect_reply_vote(Vote::Ack);
    s.wait_votes(&[1]);
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}
