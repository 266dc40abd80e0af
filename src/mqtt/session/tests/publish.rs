//! Publishing against a scripted broker: the in-flight window, the
//! bounded queue, refused messages, coalescing and deletions.

use super::*;

#[test]
fn inflight_window_and_puback_timeout() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    bring_online(&mut s, t0);
    for i in 0..10 {
        s.publish(&format!("t/{i}"), b"v", true, t0).unwrap();
    }
    let sent = drain(&mut s, t0);
    assert_eq!(publishes(&sent).len(), 4, "max_inflight");
    assert!(drain(&mut s, t0).is_empty());
    // One PUBACK frees one slot.
    let Packet::Publish(first) = &sent[0] else {
        panic!()
    };
    s.handle_input(&encode(&Packet::PubAck(PubAck::new(first.pkid))), t0);
    assert_eq!(publishes(&drain(&mut s, t0)).len(), 1);
    // A PUBACK one keepalive late: the broker is dead.
    assert_eq!(s.poll_timeout(), Some(t0 + KA));
    s.handle_timeout(t0 + KA);
    assert_eq!(closed(&mut s).0, CloseReason::BrokerTimeout);
}

#[test]
fn queue_is_bounded_events_overflow_drops_the_connection() {
    let t0 = origin();
    let mut c = cfg();
    c.max_queued_bytes = 1000;
    c.max_inflight = 1000;
    let mut s = session(c, t0);
    bring_online(&mut s, t0);
    // Retained messages beyond the cap wait; the queue never exceeds it.
    let payload = [b'x'; 200];
    for i in 0..20 {
        s.publish(&format!("r/{i:02}"), &payload, true, t0).unwrap();
    }
    let queued = s.poll_transmit(t0).map_or(0, <[u8]>::len);
    assert!(queued <= 1000 && queued > 600, "{queued}");
    assert!(s.is_online());
    // The shell cannot write (broker slow); an event does not fit.
    s.publish("e", &payload, false, t0).unwrap();
    assert_eq!(closed(&mut s).0, CloseReason::QueueFull);
    assert_eq!(
        s.poll_transmit(t0),
        None,
        "queue dropped with the connection"
    );
    // After the reconnect every retained message gets through, in caps.
    let retry = s.poll_timeout().unwrap();
    s.handle_timeout(retry);
    let mut got = publishes(&bring_online(&mut s, retry));
    for _ in 0..10 {
        let sent = drain(&mut s, retry);
        ack_all(&mut s, &sent, retry);
        got.extend(publishes(&sent));
    }
    let topics: Vec<_> = got
        .iter()
        .filter(|p| p.0.starts_with("r/"))
        .map(|p| &p.0)
        .collect();
    assert_eq!(topics.len(), 20);
}

#[test]
fn oversized_and_invalid_messages_are_refused() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    for topic in ["", "a/+/b", "a/#", "a\0b"] {
        assert_eq!(
            s.publish(topic, b"x", true, t0),
            Err(PublishError::InvalidTopic)
        );
    }
    let long = "t".repeat(70_000);
    assert_eq!(
        s.publish(&long, b"x", true, t0),
        Err(PublishError::InvalidTopic)
    );
    assert_eq!(
        s.publish("t", &[0; 2100], true, t0),
        Err(PublishError::TooLarge)
    );
}

#[test]
fn coalesces_and_deletes() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    s.publish("a", b"1", true, t0).unwrap();
    s.publish("a", b"2", true, t0).unwrap();
    s.publish("gone", b"", true, t0).unwrap();
    let sent = bring_online(&mut s, t0);
    let p = publishes(&sent);
    assert_eq!(p[1], ("a".into(), b"2".to_vec(), QoS::AtLeastOnce, true));
    assert_eq!(p[2], ("gone".into(), vec![], QoS::AtLeastOnce, true));
    assert_eq!(p.len(), 3);
    // The deletion, acknowledged, is forgotten: not sent after a reconnect.
    ack_all(&mut s, &sent, t0);
    s.connection_lost(t0);
    let (_, retry) = closed(&mut s);
    s.handle_timeout(retry);
    let p = publishes(&bring_online(&mut s, retry));
    assert_eq!(
        p.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["qnetd/status", "a"]
    );
    // An unacknowledged deletion is sent again.
    s.publish("a", b"", true, retry).unwrap();
    drain(&mut s, retry);
    s.connection_lost(retry);
    let (_, retry2) = closed(&mut s);
    s.handle_timeout(retry2);
    let p = publishes(&bring_online(&mut s, retry2));
    assert_eq!(p[1], ("a".into(), vec![], QoS::AtLeastOnce, true));
}
