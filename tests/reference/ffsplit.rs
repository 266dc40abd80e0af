//! `ffsplit` (fifty-fifty split): votes travel in VOTE_INFO, NACKs first,
//! ACKs only after every NACK was confirmed; stability, partition scoring,
//! KAP and tie-breakers (protocol.md §6.2).

use qnetd::proto::{Heuristics, MsgType, ReplyErrorCode as E, Vote};

use crate::support::runner::check;
use crate::support::scenario::{HIGHEST, Scenario, node_tb, ring};

const PASS: Option<Heuristics> = Some(Heuristics::Pass);
const FAIL: Option<Heuristics> = Some(Heuristics::Fail);

/// All of `ids` join with config `ids` and agree on one membership.
fn joint(s: &mut Scenario, ids: &[u32]) {
    s.join_all(ids, ids).partition(ring(1, 8), ids);
    for &id in ids {
        s.client(id).expect_vote(Vote::Ack);
    }
}

/// Two joint nodes split into `{1}` and `{2}`; node 2 answers its votes by
/// hand and gets its NACK first (the NACK round is pending).
fn split_2n_nack_pending(s: &mut Scenario) {
    joint(s, &[1, 2]);
    s.client(2).manual_votes();
    s.alone(1, 12);
    s.alone(2, 12).expect_vote(Vote::Nack);
}

/// The `kap4` start: 3 and 4 (config `1..=4`) form ring `3.8` and hold the
/// vote; `between` runs before 1 and 2 join.
fn kap4_active_34(s: &mut Scenario, between: impl FnOnce(&mut Scenario)) {
    s.join_all(&[3, 4], &[1, 2, 3, 4]);
    s.partition(ring(3, 8), &[3, 4]);
    between(s);
    s.join_all(&[1, 2], &[1, 2, 3, 4]);
}

/// Two nodes, one membership: the first membership list waits for the
/// other node (WAIT_FOR_REPLY), the second makes both ACK via VOTE_INFO;
/// quorum lists are informative only.
#[test]
fn ffsplit_2n_joint_membership_both_ack() {
    let mut s = Scenario::new("ffsplit_2n_joint_membership_both_ack");
    s.join_all(&[1, 2], &[1, 2]);
    s.client(1)
        .membership(ring(1, 8), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2)
        .membership(ring(1, 8), &[1, 2])
        .expect_reply_vote(Vote::NoChange)
        .expect_vote(Vote::Ack);
    s.client(1).expect_vote(Vote::Ack);
    s.client(1)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::NoChange);
    s.client(2)
        .quorum(true, &[1, 2])
        .expect_reply_vote(Vote::NoChange);
    check(&s);
}

/// 50:50 split, lowest tie-breaker, late VOTE_INFO_REPLY: node 2 gets NACK
/// and node 1 gets its ACK only once node 2 has confirmed the NACK.
#[test]
fn ffsplit_2n_split_ack_waits_for_nack_reply() {
    let mut s = Scenario::new("ffsplit_2n_split_ack_waits_for_nack_reply");
    joint(&mut s, &[1, 2]);
    s.client(2).manual_votes();
    s.alone(1, 12).expect_reply_vote(Vote::WaitForReply);
    s.alone(2, 12).expect_vote(Vote::Nack);
    s.sleep(400);
    s.client(1).expect_silent().expect_vote(Vote::WaitForReply);
    s.client(2).vote_reply();
    s.client(1).expect_type(MsgType::VoteInfo);
    s.client(1).quorum(true, &[1]);
    s.client(2).quorum(false, &[2]);
    check(&s);
}

/// 50:50 split decided by the tie-breaker. Each row: scenario name,
/// tie-breaker, the node that reports its split first, the winner. The
/// second report decides: its sender hears its vote first, then the first.
#[test]
fn ffsplit_2n_split_tie_breakers() {
    let rows = [
        // Highest node id: node 1 loses.
        ("ffsplit_2n_split_highest_tie_breaker", HIGHEST, 1, 2),
        // Tie-breaker "node 2", reported in the other order.
        ("ffsplit_2n_split_node_id_tie_breaker", node_tb(2), 2, 2),
    ];
    for (name, tb, first, winner) in rows {
        let second = 3 - first;
        let vote = |id| if id == winner { Vote::Ack } else { Vote::Nack };
        let mut s = Scenario::new(name);
        s.tie_breaker(tb);
        joint(&mut s, &[1, 2]);
        s.alone(first, 12);
        s.alone(second, 12).expect_vote(vote(second));
        s.client(first).expect_vote(vote(first));
        check(&s);
    }
}

/// When a node leaves, the survivors are re-evaluated: node 1 gets a fresh
/// ACK; rejoining brings both back to ACK.
#[test]
fn ffsplit_2n_node_leaves_survivor_gets_fresh_ack() {
    let mut s = Scenario::new("ffsplit_2n_node_leaves_survivor_gets_fresh_ack");
    joint(&mut s, &[1, 2]);
    s.client(2).disconnect();
    s.client(1)
        .expect_type(MsgType::VoteInfo)
        .expect_vote(Vote::Ack);
    s.alone(1, 12).expect_vote(Vote::Ack);
    s.client(2).connect().join(&[1, 2]);
    s.client(2).membership(ring(1, 16), &[1, 2]);
    s.client(1)
        .membership(ring(1, 16), &[1, 2])
        .expect_vote(Vote::Ack);
    s.client(2).expect_vote(Vote::Ack);
    check(&s);
}

/// A VOTE_INFO_REPLY with another seq than the last VOTE_INFO is ignored
/// ("old"); a duplicate of the right one is harmless.
#[test]
fn ffsplit_old_and_duplicate_vote_info_replies() {
    let mut s = Scenario::new("ffsplit_old_and_duplicate_vote_info_replies");
    split_2n_nack_pending(&mut s);
    s.client(2)
        .vote_reply_seq(1)
        .vote_reply_seq(3)
        .vote_reply_seq(0);
    s.client(1).expect_silent();
    s.client(2).vote_reply_seq(2);
    s.client(1).expect_vote(Vote::Ack);
    s.client(2).vote_reply_seq(2).vote_reply_seq(2);
    s.client(1).expect_silent().membership(ring(1, 12), &[1]);
    check(&s);
}

/// A node that leaves while its NACK is unconfirmed unblocks the ACKs.
#[test]
fn ffsplit_node_leaves_during_nack_round() {
    let mut s = Scenario::new("ffsplit_node_leaves_during_nack_round");
    split_2n_nack_pending(&mut s);
    s.client(2).disconnect();
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}

/// 4 nodes, 2:2 split with KAP on everywhere and equal scores: both halves
/// were in the previous quorate partition, so the lowest tie-breaker picks
/// {1,2}; {3,4} are NACKed first.
#[test]
fn ffsplit_4n_2_2_split_lowest() {
    let mut s = Scenario::new("ffsplit_4n_2_2_split_lowest");
    joint(&mut s, &[1, 2, 3, 4]);
    s.client(3).manual_votes();
    s.client(4).manual_votes();
    s.partition(ring(1, 12), &[1, 2]);
    s.partition(ring(3, 12), &[3, 4]);
    s.expect_votes(&[(3, Vote::Nack), (4, Vote::Nack)]);
    s.client(3).vote_reply();
    s.client(1).expect_silent();
    s.client(4).vote_reply();
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Ack)]);
    check(&s);
}

/// The `kap4` trace: 3 and 4 hold the vote; 1 and 2 join as the other half.
/// With KAP on all four, the active partition {3,4} keeps the vote although
/// the lowest tie-breaker favours {1,2}.
#[test]
fn ffsplit_4n_kap_keeps_active_partition() {
    let mut s = Scenario::new("ffsplit_4n_kap_keeps_active_partition");
    kap4_active_34(&mut s, |s| {
        s.client(3).expect_vote(Vote::Ack);
    });
    s.partition(ring(1, 12), &[1, 2]);
    s.expect_votes(&[
        (1, Vote::Nack),
        (2, Vote::Nack),
        (3, Vote::Ack),
        (4, Vote::Ack),
    ]);
    check(&s);
}

/// As above, but node 1 has KAP disabled: KAP needs every client, so the
/// tie-breaker decides and the vote moves to {1,2} (3 and 4 NACKed first).
#[test]
fn ffsplit_4n_kap_off_on_one_node_tie_breaker_decides() {
    let mut s = Scenario::new("ffsplit_4n_kap_off_on_one_node_tie_breaker_decides");
    kap4_active_34(&mut s, |s| {
        s.client(1).kap(Some(false));
    });
    s.partition(ring(1, 12), &[1, 2]);
    s.expect_votes(&[
        (3, Vote::Nack),
        (4, Vote::Nack),
        (1, Vote::Ack),
        (2, Vote::Ack),
    ]);
    s.ipc("list verbose");
    check(&s);
}

/// KAP from the server default (`-S keep_active_partition_tie_breaker=on`)
/// when clients send no SET_OPTION: the active partition keeps the vote.
#[test]
fn ffsplit_4n_server_default_kap_on() {
    let mut s = Scenario::new("ffsplit_4n_server_default_kap_on");
    s.setting("keep_active_partition_tie_breaker=on").kap(None);
    kap4_active_34(&mut s, |_| {});
    s.partition(ring(1, 12), &[1, 2]);
    s.expect_votes(&[(1, Vote::Nack), (3, Vote::Ack)]);
    s.ipc("list verbose");
    check(&s);
}

/// Server default KAP off and no SET_OPTION: the tie-breaker decides.
#[test]
fn ffsplit_4n_server_default_kap_off() {
    let mut s = Scenario::new("ffsplit_4n_server_default_kap_off");
    s.kap(None);
    kap4_active_34(&mut s, |_| {});
    s.partition(ring(1, 12), &[1, 2]);
    s.expect_votes(&[(1, Vote::Ack), (3, Vote::Nack)]);
    check(&s);
}

/// Server default KAP on, but one client switches it off with SET_OPTION
/// (mid-way, after joining): the tie-breaker decides.
#[test]
fn ffsplit_4n_server_kap_on_client_turns_it_off() {
    let mut s = Scenario::new("ffsplit_4n_server_kap_on_client_turns_it_off");
    s.setting("keep_active_partition_tie_breaker=on").kap(None);
    kap4_active_34(&mut s, |_| {});
    s.client(4).set_kap(false);
    s.partition(ring(1, 12), &[1, 2]);
    s.expect_votes(&[(1, Vote::Ack), (4, Vote::Nack)]);
    check(&s);
}

/// 4 nodes, 3:1 split: the majority wins regardless of the tie-breaker.
#[test]
fn ffsplit_4n_3_1_split_majority_wins() {
    let mut s = Scenario::new("ffsplit_4n_3_1_split_majority_wins");
    s.tie_breaker(node_tb(4));
    joint(&mut s, &[1, 2, 3, 4]);
    s.alone(4, 12);
    s.partition(ring(1, 12), &[1, 2, 3]);
    s.expect_votes(&[(4, Vote::Nack), (1, Vote::Ack), (3, Vote::Ack)]);
    check(&s);
}

/// Odd config (3 nodes): a partition needs more than half; {2,3} wins over
/// {1} even with the lowest tie-breaker.
#[test]
fn ffsplit_3n_odd_config_needs_majority() {
    let mut s = Scenario::new("ffsplit_3n_odd_config_needs_majority");
    joint(&mut s, &[1, 2, 3]);
    s.alone(1, 12);
    s.partition(ring(2, 12), &[2, 3]);
    s.expect_votes(&[(1, Vote::Nack), (2, Vote::Ack)]);
    check(&s);
}

/// 5 nodes, 3:2 split; then a second split into 2:2:1 leaves nobody with a
/// majority of the odd config.
#[test]
fn ffsplit_5n_3_2_then_2_2_1() {
    let mut s = Scenario::new("ffsplit_5n_3_2_then_2_2_1");
    joint(&mut s, &[1, 2, 3, 4, 5]);
    s.partition(ring(1, 12), &[1, 2]);
    s.partition(ring(3, 12), &[3, 4, 5]);
    s.expect_votes(&[(1, Vote::Nack), (5, Vote::Ack)]);
    s.partition(ring(3, 16), &[3, 4]);
    s.alone(5, 16);
    s.expect_votes(&[(3, Vote::Nack), (5, Vote::Nack)]);
    check(&s);
}

/// Equal halves: heuristics PASS on {3,4} beats undefined on {1,2} and the
/// lowest tie-breaker.
#[test]
fn ffsplit_4n_heuristics_pass_beats_tie_breaker() {
    let mut s = Scenario::new("ffsplit_4n_heuristics_pass_beats_tie_breaker");
    joint(&mut s, &[1, 2, 3, 4]);
    s.partition(ring(1, 12), &[1, 2]);
    for id in [3, 4] {
        s.client(id).membership_h(ring(3, 12), &[3, 4], PASS);
    }
    s.expect_votes(&[(1, Vote::Nack), (3, Vote::Ack)]);
    check(&s);
}

/// Equal halves: heuristics FAIL on {1,2} loses against undefined {3,4};
/// one PASS and one FAIL cancel out.
#[test]
fn ffsplit_4n_heuristics_fail_loses() {
    let mut s = Scenario::new("ffsplit_4n_heuristics_fail_loses");
    joint(&mut s, &[1, 2, 3, 4]);
    s.client(1).membership_h(ring(1, 12), &[1, 2], FAIL);
    s.client(2).membership_h(ring(1, 12), &[1, 2], PASS);
    s.client(3).membership_h(ring(3, 12), &[3, 4], FAIL);
    s.client(4).membership_h(ring(3, 12), &[3, 4], None);
    s.expect_votes(&[(1, Vote::Ack), (4, Vote::Nack)]);
    check(&s);
}

/// HEURISTICS_CHANGE re-runs the decision: node 1's heuristics fail, so the
/// vote moves to node 2 (NACK to 1 before its HEURISTICS_CHANGE_REPLY, ACK
/// to 2 after 1 confirmed); passing again moves it back.
#[test]
fn ffsplit_heuristics_change_moves_vote() {
    let mut s = Scenario::new("ffsplit_heuristics_change_moves_vote");
    joint(&mut s, &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12);
    s.client(1).expect_vote(Vote::Ack);
    s.client(1)
        .heuristics_change(Heuristics::Fail)
        .expect_type(MsgType::HeuristicsChangeReply)
        .expect_vote(Vote::Nack);
    s.client(2).expect_vote(Vote::Ack);
    s.client(2).heuristics_change(Heuristics::Fail);
    s.client(1).heuristics_change(Heuristics::Pass);
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Nack)]);
    s.ipc("list verbose");
    check(&s);
}

/// HEURISTICS_CHANGE before any config or membership list: ASK_LATER.
#[test]
fn ffsplit_heuristics_change_before_lists_asks_later() {
    let mut s = Scenario::new("ffsplit_heuristics_change_before_lists_asks_later");
    s.client(1)
        .handshake()
        .heuristics_change(Heuristics::Pass)
        .expect_reply_vote(Vote::AskLater)
        .config(&[1, 2])
        .heuristics_change(Heuristics::Fail)
        .expect_reply_vote(Vote::AskLater)
        .membership(ring(1, 4), &[1])
        .expect_vote(Vote::Ack)
        // Score 1 - 1 = 0 still beats "no partition" on active nodes.
        .heuristics_change(Heuristics::Fail)
        .expect_vote(Vote::Ack);
    check(&s);
}

/// Node lists ffsplit refuses: empty config or one without the own node
/// (18), empty membership or one without the own node (19). Nothing is
/// stored, the connection stays.
#[test]
fn ffsplit_invalid_node_lists_are_errors() {
    let mut s = Scenario::new("ffsplit_invalid_node_lists_are_errors");
    s.client(1)
        .handshake()
        .config(&[2, 3])
        .expect_error(E::InvalidConfigNodeList)
        .config(&[])
        .expect_error(E::InvalidConfigNodeList)
        .membership(ring(1, 4), &[2])
        .expect_error(E::InvalidMembershipNodeList)
        .membership(ring(1, 4), &[])
        .expect_error(E::InvalidMembershipNodeList)
        .membership(ring(1, 4), &[1, 2])
        .expect_reply_vote(Vote::AskLater)
        .config(&[1, 2])
        .expect_reply_vote(Vote::AskLater)
        .changed_config(&[2])
        .expect_error(E::InvalidConfigNodeList)
        .changed_config(&[1, 2])
        .membership(ring(1, 5), &[3, 1])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// Different config lists make the membership unstable: WAIT_FOR_REPLY and
/// no VOTE_INFO, until a changed config brings them back in line.
#[test]
fn ffsplit_config_disagreement_is_unstable() {
    let mut s = Scenario::new("ffsplit_config_disagreement_is_unstable");
    s.client(1).join(&[1, 2]);
    s.client(2).join(&[1, 2, 3]);
    s.client(1).membership(ring(1, 8), &[1, 2]);
    s.client(2)
        .membership(ring(1, 8), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(1).expect_vote(Vote::WaitForReply);
    s.client(2).changed_config(&[2, 1]);
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Ack)]);
    check(&s);
}

/// Nodes that list each other but report different ring ids are unstable
/// until they agree.
#[test]
fn ffsplit_ring_disagreement_is_unstable() {
    let mut s = Scenario::new("ffsplit_ring_disagreement_is_unstable");
    s.join_all(&[1, 2], &[1, 2]);
    s.client(1).membership(ring(1, 8), &[1, 2]);
    s.client(2)
        .membership(ring(2, 12), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(1)
        .membership(ring(2, 12), &[1, 2])
        .expect_vote(Vote::Ack);
    s.client(2).expect_vote(Vote::Ack);
    check(&s);
}

/// A membership list before any config list is ASK_LATER, so is a changed
/// config before any membership; a changed config afterwards re-runs the
/// decision.
#[test]
fn ffsplit_list_order_ask_later_and_changed_config() {
    let mut s = Scenario::new("ffsplit_list_order_ask_later_and_changed_config");
    s.client(1)
        .handshake()
        .membership(ring(1, 4), &[1, 2])
        .expect_reply_vote(Vote::AskLater)
        .changed_config(&[1, 2])
        .expect_reply_vote(Vote::NoChange);
    s.client(2).join(&[1, 2]).membership(ring(1, 4), &[1, 2]);
    s.client(1).membership(ring(1, 4), &[1, 2]);
    s.client(2).changed_config(&[1, 2, 3, 4]);
    s.client(1).changed_config(&[1, 2, 3, 4]);
    s.client(1).quorum(true, &[1, 2]);
    check(&s);
}

/// A single connected client whose membership is half of a 4-node config
/// gets ACK; duplicate node ids in a list count in its size.
#[test]
fn ffsplit_single_client_half_config_and_list_duplicates() {
    let mut s = Scenario::new("ffsplit_single_client_half_config_and_list_duplicates");
    s.client(1)
        .join(&[1, 2, 3, 4])
        .membership(ring(1, 4), &[1])
        .expect_vote(Vote::Nack)
        .membership(ring(1, 5), &[1, 1])
        .expect_vote(Vote::Ack)
        .membership(ring(1, 6), &[1, 2])
        .expect_vote(Vote::Ack)
        .changed_config(&[1, 2, 3, 4, 4])
        .expect_vote(Vote::Nack);
    check(&s);
}

/// ASK_FOR_VOTE is not supported by ffsplit (14); quorum lists are
/// NO_CHANGE.
#[test]
fn ffsplit_ask_for_vote_unsupported() {
    let mut s = Scenario::new("ffsplit_ask_for_vote_unsupported");
    s.client(1)
        .handshake()
        .ask_for_vote()
        .expect_error(E::UnsupportedDecisionAlgorithmMessage)
        .config(&[1])
        .membership(ring(1, 4), &[1])
        .ask_for_vote()
        .expect_error(E::UnsupportedDecisionAlgorithmMessage)
        .quorum(true, &[1])
        .expect_reply_vote(Vote::NoChange);
    check(&s);
}

/// A silent client is dropped by dead-peer detection after 1.5 × heartbeat
/// without any message, and the rest of the cluster is re-evaluated.
#[test]
fn ffsplit_dpd_drops_silent_client_and_reevaluates() {
    let mut s = Scenario::new("ffsplit_dpd_drops_silent_client_and_reevaluates");
    joint(&mut s, &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12);
    s.client(2).expect_vote(Vote::Nack).silence();
    s.client(2).wait_closed(4000).expect_closed();
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}

/// A node of the winning half leaves during the ACK round of a 4-node
/// split; the remaining nodes are re-evaluated.
#[test]
fn ffsplit_4n_node_leaves_during_ack_round() {
    let mut s = Scenario::new("ffsplit_4n_node_leaves_during_ack_round");
    joint(&mut s, &[1, 2, 3, 4]);
    s.client(1).manual_votes();
    s.partition(ring(1, 12), &[1, 2]);
    s.partition(ring(3, 12), &[3, 4]);
    s.client(1).expect_vote(Vote::Ack);
    s.client(2).disconnect();
    s.client(1).vote_reply().vote_reply();
    s.client(3).membership(ring(3, 12), &[3, 4]);
    check(&s);
}

/// Two ffsplit clusters split at the same time with different
/// tie-breakers; each cluster's NACK/ACK rounds are independent.
#[test]
fn ffsplit_two_clusters_split_independently() {
    let mut s = Scenario::new("ffsplit_two_clusters_split_independently");
    for c in ["a", "b"] {
        if c == "b" {
            s.tie_breaker(HIGHEST);
        }
        s.client_in(c, 1).join(&[1, 2]);
        s.client_in(c, 2).join(&[1, 2]);
        s.client_in(c, 1).membership(ring(1, 8), &[1, 2]);
        s.client_in(c, 2).membership(ring(1, 8), &[1, 2]);
    }
    s.client_in("a", 2).manual_votes();
    s.client_in("b", 1).manual_votes();
    for c in ["a", "b"] {
        s.client_in(c, 1).membership(ring(1, 12), &[1]);
        s.client_in(c, 2).membership(ring(2, 12), &[2]);
    }
    s.client_in("a", 2).vote_reply();
    s.client_in("a", 1).expect_vote(Vote::Ack);
    s.client_in("b", 2).expect_silent();
    s.client_in("b", 1).vote_reply();
    s.client_in("b", 2).expect_vote(Vote::Ack);
    check(&s);
}

/// Repeated identical membership lists re-run the decision and re-send the
/// votes (with new VOTE_INFO seqs).
#[test]
fn ffsplit_repeated_lists_resend_votes() {
    let mut s = Scenario::new("ffsplit_repeated_lists_resend_votes");
    joint(&mut s, &[1, 2]);
    s.partition(ring(1, 8), &[1, 2]);
    s.client(1).changed_config(&[1, 2]);
    s.client(2).heuristics_change(Heuristics::Pass);
    s.client(1).expect_vote(Vote::Ack);
    check(&s);
}

/// A leaving client still counts as "active" in the partition statistics
/// of its own disconnect evaluation (protocol.md §6.2 step 3): after node 1
/// leaves, {1,2} still ties with {3,4} and keeps the vote.
#[test]
fn ffsplit_4n_leaving_client_still_counts_as_active() {
    let mut s = Scenario::new("ffsplit_4n_leaving_client_still_counts_as_active");
    joint(&mut s, &[1, 2, 3, 4]);
    s.partition(ring(1, 12), &[1, 2]);
    s.partition(ring(3, 12), &[3, 4]);
    s.expect_votes(&[(2, Vote::Ack), (3, Vote::Nack)]);
    s.client(1).disconnect();
    s.expect_votes(&[(2, Vote::Ack), (3, Vote::Nack)]);
    // The next evaluation no longer sees node 1: {3,4} wins on score.
    s.alone(2, 16);
    s.expect_votes(&[(3, Vote::Ack), (2, Vote::Nack)]);
    s.ipc("list verbose");
    check(&s);
}

/// New heuristics of the client whose message triggers the run count only
/// when its own partition is evaluated; its partition peers still see its
/// stored heuristics. {3,4} hold the vote (KAP); node 3 reports FAIL: the
/// view from node 4 still scores {3,4} at 2, so KAP keeps the vote there.
/// The next run sees node 3's stored FAIL everywhere and the vote moves.
#[test]
fn ffsplit_4n_heuristics_change_counts_in_own_partition_only() {
    let mut s = Scenario::new("ffsplit_4n_heuristics_change_counts_in_own_partition_only");
    kap4_active_34(&mut s, |_| {});
    s.partition(ring(1, 12), &[1, 2]);
    s.expect_votes(&[(3, Vote::Ack), (1, Vote::Nack)]);
    s.client(3).heuristics_change(Heuristics::Fail);
    s.expect_votes(&[(3, Vote::Ack), (1, Vote::Nack)]);
    s.client(2).changed_config(&[1, 2, 3, 4]);
    s.expect_votes(&[(3, Vote::Nack), (1, Vote::Ack)]);
    check(&s);
}

/// A connected client that has not sent its config list yet has an empty
/// one, which makes the whole cluster unstable; its leaving makes it
/// stable again.
#[test]
fn ffsplit_client_without_config_makes_cluster_unstable() {
    let mut s = Scenario::new("ffsplit_client_without_config_makes_cluster_unstable");
    joint(&mut s, &[1, 2]);
    s.client(3).handshake();
    s.client(1)
        .membership(ring(1, 12), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2)
        .membership(ring(1, 12), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(3).disconnect();
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Ack)]);
    check(&s);
}

/// A new membership change in the middle of a NACK round abandons it; a
/// late reply to the abandoned NACK is then harmless, and the next stable
/// membership starts a fresh round.
#[test]
fn ffsplit_new_change_abandons_pending_round() {
    let mut s = Scenario::new("ffsplit_new_change_abandons_pending_round");
    split_2n_nack_pending(&mut s);
    s.client(1)
        .membership(ring(1, 16), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2).vote_reply();
    s.client(1).expect_silent();
    s.client(2).auto_votes().membership(ring(1, 16), &[1, 2]);
    s.client(1).expect_vote(Vote::Ack);
    s.client(2).vote_reply().expect_vote(Vote::Ack);
    check(&s);
}

/// The VOTE_INFO seq is per connection: it restarts at 1 after a
/// reconnect, and keeps counting across rounds otherwise.
#[test]
fn ffsplit_vote_info_seq_per_connection() {
    let mut s = Scenario::new("ffsplit_vote_info_seq_per_connection");
    joint(&mut s, &[1, 2]);
    for r in [12, 16, 20] {
        s.client(1).membership(ring(1, r), &[1, 2]);
        s.client(2).membership(ring(1, r), &[1, 2]);
    }
    s.client(2).reconnect().join(&[1, 2]);
    s.client(2)
        .membership(ring(1, 20), &[1, 2])
        .expect_vote(Vote::Ack);
    check(&s);
}

/// Stability: for every node a client lists that has a connected client,
/// that client must report the same ring and list every node the first one
/// lists (unconnected nodes included); unconnected listed nodes are not
/// asked themselves.
#[test]
fn ffsplit_membership_agreement_rules() {
    let mut s = Scenario::new("ffsplit_membership_agreement_rules");
    s.join_all(&[1, 2], &[1, 2, 3, 4]);
    s.alone(2, 8);
    s.client(1)
        .membership(ring(2, 8), &[1, 2])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(2)
        .membership(ring(2, 8), &[1, 2, 3])
        .expect_reply_vote(Vote::WaitForReply);
    s.client(1)
        .membership(ring(2, 8), &[3, 2, 1])
        .expect_vote(Vote::Ack);
    s.client(2).expect_vote(Vote::Ack);
    s.client(1)
        .membership(ring(2, 8), &[1, 2, 3, 4])
        .expect_reply_vote(Vote::WaitForReply);
    check(&s);
}

/// Config lists are compared as sets: order and duplicates do not matter
/// for stability (but duplicates count in the sizes: node 2's list of five
/// is odd and has no majority, node 1's half wins for both).
#[test]
fn ffsplit_config_lists_compared_as_sets() {
    let mut s = Scenario::new("ffsplit_config_lists_compared_as_sets");
    s.client(1).join(&[1, 2, 3, 4]);
    s.client(2).join(&[4, 3, 2, 1, 1]);
    s.partition(ring(1, 8), &[1, 2]);
    s.expect_votes(&[(1, Vote::Ack), (2, Vote::Ack)]);
    check(&s);
}

/// SET_OPTION switching KAP off in the middle of a split changes the next
/// decision only.
#[test]
fn ffsplit_kap_switched_off_between_rounds() {
    let mut s = Scenario::new("ffsplit_kap_switched_off_between_rounds");
    kap4_active_34(&mut s, |_| {});
    s.partition(ring(1, 12), &[1, 2]);
    s.client(3).expect_vote(Vote::Ack);
    s.client(2)
        .set_kap(false)
        .expect_type(MsgType::SetOptionReply);
    s.client(3).expect_vote(Vote::Ack);
    s.client(2).membership(ring(1, 12), &[1, 2]);
    s.expect_votes(&[(3, Vote::Nack), (2, Vote::Ack)]);
    check(&s);
}

/// The node-id tie-breaker may name a node that is not in the config at
/// all: then no half is preferred and the earlier partition (in node-id
/// order) wins the tie.
#[test]
fn ffsplit_node_id_tie_breaker_outside_config() {
    let mut s = Scenario::new("ffsplit_node_id_tie_breaker_outside_config");
    s.tie_breaker(node_tb(9));
    joint(&mut s, &[1, 2, 3, 4]);
    s.partition(ring(3, 12), &[3, 4]);
    s.partition(ring(1, 12), &[1, 2]);
    s.client(1).quorum(true, &[1, 2]);
    s.client(3).quorum(true, &[3, 4]);
    check(&s);
}
