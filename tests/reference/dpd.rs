//! Dead-peer detection: a client that sends nothing for
//! `dpd_interval_coefficient` × heartbeat is closed without a word.

use qnetd::proto::{MsgType, Vote};

use crate::support::runner::check;
use crate::support::scenario::{Scenario, algo, ring};

/// A silent client is closed after 1.5 × heartbeat (not before 1 s), its
/// neighbour that keeps talking stays.
#[test]
fn dpd_closes_silent_client_not_before_time() {
    let mut s = Scenario::new("dpd_closes_silent_client_not_before_time");
    s.algorithm(algo::TEST);
    s.client(1).join(&[1, 2]).membership(ring(1, 4), &[1, 2]);
    s.client(2).join(&[1, 2]).membership(ring(1, 4), &[1, 2]);
    s.client(1).silence();
    s.sleep(900);
    s.client(1).expect_silent();
    s.client(1).wait_closed(3000).expect_closed();
    s.client(2).echo().expect_type(MsgType::EchoReply);
    check(&s);
}

/// SET_OPTION with a new heartbeat re-arms the timer with the new interval
/// (2000 ms → closed after 3 s, not after 1.5 s).
#[test]
fn dpd_follows_set_option_heartbeat() {
    let mut s = Scenario::new("dpd_follows_set_option_heartbeat");
    s.algorithm(algo::TEST);
    s.client(1).join(&[1]).set_heartbeat(2000).silence();
    s.sleep(2000);
    s.client(1).expect_silent();
    s.client(1).wait_closed(3000).expect_closed();
    check(&s);
}

/// `dpd_enabled=off`: a silent client is never dropped.
#[test]
fn dpd_disabled_keeps_silent_clients() {
    let mut s = Scenario::new("dpd_disabled_keeps_silent_clients");
    s.setting("dpd_enabled=off").algorithm(algo::TWO_NODE_LMS);
    s.client(1)
        .join(&[1, 2])
        .membership(ring(1, 4), &[1])
        .silence();
    s.sleep(2200);
    s.client(1)
        .expect_silent()
        .ask_for_vote()
        .expect_reply_vote(Vote::Ack);
    check(&s);
}

/// `dpd_interval_coefficient=3` with heartbeat 1000: closed after 3 s; a
/// message received in between (an error reply counts) restarts the timer.
#[test]
fn dpd_coefficient_and_restart_by_any_message() {
    let mut s = Scenario::new("dpd_coefficient_and_restart_by_any_message");
    s.setting("dpd_interval_coefficient=3");
    s.client(1).join(&[1, 2]).silence();
    s.sleep(1500);
    s.client(1).ask_for_vote();
    s.sleep(2000);
    s.client(1)
        .expect_silent()
        .wait_closed(3000)
        .expect_closed();
    check(&s);
}

/// Skipped messages (unknown type, too long) do not restart the dead-peer
/// timer; the connection is closed on time although the client keeps
/// sending them.
#[test]
fn dpd_not_restarted_by_skipped_messages() {
    use crate::support::scenario::raw;
    let mut s = Scenario::new("dpd_not_restarted_by_skipped_messages");
    s.setting("dpd_interval_coefficient=3")
        .algorithm(algo::TEST);
    s.client(1).join(&[1]).silence();
    for _ in 0..4 {
        s.client(1).raw(&raw::msg(99, &[raw::seq(1)]));
        s.sleep(300);
    }
    s.client(1)
        .expect_silent()
        .wait_closed(2000)
        .expect_closed();
    check(&s);
}

/// Messages that fail to decode do restart the dead-peer timer (it is
/// restarted before decoding).
#[test]
fn dpd_restarted_by_undecodable_messages() {
    use crate::support::scenario::raw;
    let mut s = Scenario::new("dpd_restarted_by_undecodable_messages");
    s.setting("dpd_interval_coefficient=3")
        .algorithm(algo::TEST);
    s.client(1).join(&[1]).silence();
    for _ in 0..5 {
        s.client(1).raw(&raw::msg(8, &[]));
        s.sleep(300);
    }
    s.sleep(1500);
    s.client(1)
        .expect_silent()
        .wait_closed(3000)
        .expect_closed();
    check(&s);
}
