//! The suite must be able to fail: the comparator is fed deliberately
//! mangled transcripts and has to flag every kind of difference.

use std::time::Duration;

use qnetd::proto::{Msg, MsgType, RingId, Vote};

use crate::support::qclient::{Event, EventKind, encode};
use crate::support::runner::{Run, compare, reference_or_skip, run_one, same_message, verdict};
use crate::support::scenario::{Scenario, ring};

fn vote_info(seq: u32, vote: Vote, r: RingId) -> Vec<u8> {
    let mut m = Msg::new(MsgType::VoteInfo);
    m.seq = Some(seq);
    m.vote = Some(vote);
    m.ring_id = Some(r);
    encode(&m)
}

fn recv(step: usize, client: usize, bytes: Vec<u8>) -> Event {
    Event {
        t: Duration::from_millis(step as u64 * 100),
        step,
        client,
        kind: EventKind::Recv(bytes),
    }
}

fn run(name: &str, events: Vec<Event>, steps: usize) -> Run {
    Run {
        server: name.into(),
        events,
        sent: vec![None; steps],
        notes: Vec::new(),
        failed_expectations: Vec::new(),
        server_log: String::new(),
    }
}

/// A two-client scenario skeleton with three steps (only its shape matters
/// to the comparator).
fn skeleton() -> Scenario {
    let mut s = Scenario::new("selftest");
    s.client(1).echo();
    s.client(2).echo();
    s.sleep(1);
    s
}

fn baseline() -> Vec<Event> {
    vec![
        recv(0, 0, vote_info(1, Vote::Ack, ring(1, 8))),
        recv(1, 1, vote_info(1, Vote::Nack, ring(2, 8))),
        recv(2, 0, vote_info(2, Vote::Ack, ring(1, 8))),
    ]
}

#[test]
fn comparator_accepts_identical_transcripts() {
    let s = skeleton();
    let cmp = compare(&s, &run("a", baseline(), 3), &run("b", baseline(), 3));
    assert!(cmp.equal, "{}", cmp.table);
}

#[test]
fn comparator_flags_every_kind_of_mangling() {
    let s = skeleton();
    let reference = run("reference", baseline(), 3);
    let manglings: Vec<(&str, Vec<Event>)> = vec![
        ("vote flipped", {
            let mut e = baseline();
            e[1] = recv(1, 1, vote_info(1, Vote::Ack, ring(2, 8)));
            e
        }),
        ("seq changed", {
            let mut e = baseline();
            e[2] = recv(2, 0, vote_info(3, Vote::Ack, ring(1, 8)));
            e
        }),
        ("ring changed", {
            let mut e = baseline();
            e[0] = recv(0, 0, vote_info(1, Vote::Ack, ring(1, 9)));
            e
        }),
        ("message missing", {
            let mut e = baseline();
            e.remove(1);
            e
        }),
        ("extra message", {
            let mut e = baseline();
            e.push(recv(2, 1, vote_info(2, Vote::Ack, ring(2, 8))));
            e
        }),
        ("arrives one step early", {
            let mut e = baseline();
            e[2].step = 1;
            e
        }),
        ("sent to the wrong client", {
            let mut e = baseline();
            e[1].client = 0;
            e
        }),
        ("connection closed instead", {
            let mut e = baseline();
            e[2].kind = EventKind::Closed;
            e
        }),
        ("undecodable bytes", {
            let mut e = baseline();
            e[0] = recv(0, 0, vec![0, 14, 0, 0, 0, 1, 0]);
            e
        }),
    ];
    for (what, events) in manglings {
        let ours = run("ours", events, 3);
        let cmp = compare(&s, &reference, &ours);
        assert!(!cmp.equal, "{what}: not detected\n{}", cmp.table);
        assert!(cmp.table.contains("<<< DIFFERS"), "{what}: {}", cmp.table);
        let report = verdict(&s, &reference, &ours).expect_err(what);
        assert!(report.contains("differs from the reference"), "{report}");
    }
}

#[test]
fn echo_replies_compare_bytes_other_messages_fields() {
    let mut a = Msg::new(MsgType::EchoReply);
    a.seq = Some(1);
    let plain = encode(&a);
    // Same decoded value (the unknown option is ignored by the decoder)
    // but not the same bytes: an ECHO_REPLY must be a byte copy.
    let mut with_unknown = plain.clone();
    with_unknown.extend_from_slice(&[0x01, 0xf4, 0, 0]);
    with_unknown[5] += 4;
    assert_eq!(
        Msg::parse(&plain).unwrap(),
        Msg::parse(&with_unknown).unwrap()
    );
    assert!(!same_message(&plain, &with_unknown));
    // For other types the decoded values are compared: option order does
    // not matter.
    let ordered = vote_info(1, Vote::Ack, ring(1, 8));
    let mut reordered = ordered[..6].to_vec();
    reordered.extend_from_slice(&ordered[14..]);
    reordered.extend_from_slice(&ordered[6..14]);
    assert_ne!(ordered, reordered);
    assert!(same_message(&ordered, &reordered));
    assert!(!same_message(
        &ordered,
        &vote_info(1, Vote::Nack, ring(1, 8))
    ));
}

/// End to end: a real run against the reference, compared with a copy of
/// itself in which one received VOTE is flipped, must fail.
#[test]
fn real_reference_run_with_injected_difference_fails() {
    let Some(reference) = reference_or_skip() else {
        return;
    };
    let mut s = Scenario::new("selftest_injected_difference");
    s.join_all(&[1, 2], &[1, 2]);
    s.partition(ring(1, 8), &[1, 2]);
    let r = run_one(&s, &reference).expect("reference starts");
    verdict(&s, &r, &r).expect("a run equals itself");
    let mut mangled = r.clone();
    mangled.server = "mangled".into();
    let victim = mangled
        .events
        .iter_mut()
        .find_map(|e| match &mut e.kind {
            EventKind::Recv(b) if b.get(..2) == Some(&[0, 14]) => Some(b),
            _ => None,
        })
        .expect("the run has a VOTE_INFO");
    let last = victim.len() - 1;
    // VOTE_INFO ends with ... VOTE(19) ACK, then RING_ID; flip the vote.
    let pos = victim
        .windows(5)
        .position(|w| w == [0, 19, 0, 1, 1])
        .expect("VOTE ACK option");
    victim[pos + 4] = 2;
    assert!(last > pos);
    let report = verdict(&s, &r, &mangled).expect_err("mangled run must differ");
    assert!(report.contains("vote=NACK"), "{report}");
    assert!(report.contains("<<< DIFFERS"), "{report}");
}
