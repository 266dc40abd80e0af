//! The session against a scripted broker: connect, publish, acknowledgements,
//! liveness, backoff and the bounds.

use super::*;
use mqttbytes_ng::v4::{ConnAck, ConnectReturnCode, PubAck};
use std::cell::Cell;
use std::rc::Rc;

const KA: Duration = Duration::from_secs(30);

/// Any instant will do: the session only compares instants.
#[allow(
    clippy::disallowed_methods,
    reason = "an arbitrary origin of test time"
)]
fn origin() -> Instant {
    Instant::now()
}

fn cfg() -> SessionConfig {
    let mut c = SessionConfig::new(client_id("qnetd"), "qnetd/status".into());
    c.login = Some(("user".into(), "pw".into()));
    c.max_queued_bytes = 4096;
    c.max_inflight = 4;
    c
}

/// A jitter source that yields `value`, shared with the test.
fn fixed_jitter(value: u64) -> (JitterSource, Rc<Cell<u64>>) {
    let cell = Rc::new(Cell::new(value));
    let c = Rc::clone(&cell);
    (Box::new(move || c.get()), cell)
}

fn session(c: SessionConfig, t0: Instant) -> Session {
    Session::new(c, fixed_jitter(0).0, t0)
}

/// Everything queued, decoded, and marked written.
fn drain(s: &mut Session, now: Instant) -> Vec<Packet> {
    let mut bytes = BytesMut::new();
    if let Some(out) = s.poll_transmit(now) {
        bytes.extend_from_slice(out);
    }
    let n = bytes.len();
    s.advance_transmit(n);
    let mut packets = Vec::new();
    while !bytes.is_empty() {
        packets.push(Packet::read(&mut bytes, usize::MAX).expect("session wrote a bad packet"));
    }
    packets
}

fn encode(p: &Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    b.to_vec()
}

fn connack(code: ConnectReturnCode) -> Vec<u8> {
    encode(&Packet::ConnAck(ConnAck::new(code, false)))
}

/// Connect, accept, and return the packets sent after the CONNACK.
fn bring_online(s: &mut Session, now: Instant) -> Vec<Packet> {
    assert_eq!(s.poll_event(), Some(Event::Connect));
    s.connected(now);
    let first = drain(s, now);
    assert!(
        matches!(first.as_slice(), [Packet::Connect(_)]),
        "{first:?}"
    );
    s.handle_input(&connack(ConnectReturnCode::Success), now);
    assert_eq!(s.poll_event(), Some(Event::Online));
    drain(s, now)
}

fn publishes(packets: &[Packet]) -> Vec<(String, Vec<u8>, QoS, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.topic.clone(), p.payload.to_vec(), p.qos, p.retain)),
            _ => None,
        })
        .collect()
}

fn ack_all(s: &mut Session, packets: &[Packet], now: Instant) {
    for p in packets {
        if let Packet::Publish(p) = p
            && p.qos == QoS::AtLeastOnce
        {
            s.handle_input(&encode(&Packet::PubAck(PubAck::new(p.pkid))), now);
        }
    }
}

fn closed(s: &mut Session) -> (CloseReason, Instant) {
    match s.poll_event() {
        Some(Event::Closed { reason, retry_at }) => (reason, retry_at),
        other => panic!("expected Closed, got {other:?}"),
    }
}

mod publish;
mod survey;

#[test]
fn client_id_is_stable_short_and_plain() {
    let a = client_id("qnetd");
    assert_eq!(a, client_id("qnetd"));
    assert_ne!(a, client_id("qnetd2"));
    assert!(a.len() <= 23, "{a}");
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    );
}

#[test]
fn connect_carries_id_login_keepalive_and_will() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    assert_eq!(s.poll_event(), Some(Event::Connect));
    assert_eq!(
        s.poll_transmit(t0),
        None,
        "nothing before the connection is open"
    );
    s.connected(t0);
    let packets = drain(&mut s, t0);
    let [Packet::Connect(c)] = packets.as_slice() else {
        panic!("expected CONNECT, got {packets:?}")
    };
    let c = c.clone();
    assert_eq!(c.client_id, client_id("qnetd"));
    assert_eq!(c.keep_alive, 30);
    assert!(c.clean_session);
    let will = c.last_will.expect("will");
    assert_eq!(
        (
            will.topic.as_str(),
            &will.message[..],
            will.qos,
            will.retain
        ),
        ("qnetd/status", &b"offline"[..], QoS::AtLeastOnce, true)
    );
    let login = c.login.expect("login");
    assert_eq!(
        (login.username.as_str(), login.password.as_str()),
        ("user", "pw")
    );
}

#[test]
fn online_publishes_availability_then_all_retained_and_again_after_reconnect() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    // Published before the broker accepted: kept, sent after CONNACK.
    s.publish("ha/sensor/a/config", b"{\"a\":1}", true, t0)
        .unwrap();
    s.publish("qnetd/a/state", b"ON", true, t0).unwrap();
    s.publish("qnetd/event", b"dropped", false, t0).unwrap();
    let sent = bring_online(&mut s, t0);
    assert_eq!(
        publishes(&sent),
        vec![
            (
                "qnetd/status".into(),
                b"online".to_vec(),
                QoS::AtMostOnce,
                true
            ),
            (
                "ha/sensor/a/config".into(),
                b"{\"a\":1}".to_vec(),
                QoS::AtLeastOnce,
                true
            ),
            (
                "qnetd/a/state".into(),
                b"ON".to_vec(),
                QoS::AtLeastOnce,
                true
            ),
        ]
    );
    ack_all(&mut s, &sent, t0);
    // Unchanged retained state is not sent again while online.
    s.publish("qnetd/a/state", b"ON", true, t0).unwrap();
    assert!(drain(&mut s, t0).is_empty());
    // A changed one is.
    s.publish("qnetd/a/state", b"OFF", true, t0).unwrap();
    let sent = drain(&mut s, t0);
    assert_eq!(publishes(&sent).len(), 1);
    ack_all(&mut s, &sent, t0);

    // The broker goes away and comes back: everything again, latest values.
    let t1 = t0 + Duration::from_secs(5);
    s.connection_lost(t1);
    let (reason, retry_at) = closed(&mut s);
    assert_eq!(reason, CloseReason::ConnectionLost);
    s.handle_timeout(retry_at);
    let sent = bring_online(&mut s, retry_at);
    let topics: Vec<_> = publishes(&sent).into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(
        topics,
        vec![
            ("qnetd/status".into(), b"online".to_vec()),
            ("ha/sensor/a/config".into(), b"{\"a\":1}".to_vec()),
            ("qnetd/a/state".into(), b"OFF".to_vec()),
        ]
    );
}

#[test]
fn refused_codes_close_and_retry() {
    for code in [
        ConnectReturnCode::RefusedProtocolVersion,
        ConnectReturnCode::BadClientId,
        ConnectReturnCode::ServiceUnavailable,
        ConnectReturnCode::BadUserNamePassword,
        ConnectReturnCode::NotAuthorized,
    ] {
        let t0 = origin();
        let mut s = session(cfg(), t0);
        assert_eq!(s.poll_event(), Some(Event::Connect));
        s.connected(t0);
        drain(&mut s, t0);
        s.handle_input(&connack(code), t0);
        let (reason, retry_at) = closed(&mut s);
        assert_eq!(reason, CloseReason::Refused(code as u8));
        assert!(!s.is_online());
        assert_eq!(s.poll_transmit(t0), None);
        assert_eq!(s.poll_timeout(), Some(retry_at));
        s.handle_timeout(retry_at);
        assert_eq!(s.poll_event(), Some(Event::Connect));
    }
    // A return code beyond 5 is a protocol error.
    let t0 = origin();
    let mut s = session(cfg(), t0);
    s.poll_event();
    s.connected(t0);
    s.handle_input(&[0x20, 0x02, 0x00, 0x06], t0);
    assert!(matches!(closed(&mut s).0, CloseReason::ProtocolError(_)));
}

#[test]
fn backoff_doubles_to_the_cap_with_equal_jitter() {
    let t0 = origin();
    let mut c = cfg();
    c.backoff_min = Duration::from_secs(1);
    c.backoff_max = Duration::from_secs(60);
    let (jitter, value) = fixed_jitter(0);
    let mut s = Session::new(c, jitter, t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for attempt in 0..10 {
        assert_eq!(s.poll_event(), Some(Event::Connect), "attempt {attempt}");
        // Jitter 0 gives the lower bound base/2; u64::MAX-ish the upper.
        value.set(if attempt % 2 == 0 { 0 } else { u64::MAX });
        s.handle_timeout(now + Duration::from_secs(10));
        let (reason, retry_at) = closed(&mut s);
        assert_eq!(reason, CloseReason::ConnectTimeout);
        let opened = now;
        delays.push((retry_at - (opened + Duration::from_secs(10))).as_millis());
        now = retry_at;
        s.handle_timeout(now);
    }
    // base: 1, 2, 4, 8, 16, 32, 60, 60... s; even attempts base/2.
    let bases = [
        1000u128, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000,
    ];
    for (i, (d, base)) in delays.iter().zip(bases).enumerate() {
        assert!(
            *d >= base / 2 && *d <= base,
            "attempt {i}: {d} not in [{}, {base}]",
            base / 2
        );
        if i % 2 == 0 {
            assert_eq!(*d, base / 2, "attempt {i}");
        }
    }
}

#[test]
fn backoff_restarts_only_after_a_stable_connection() {
    let t0 = origin();
    let mut c = cfg();
    c.backoff_min = Duration::from_secs(1);
    c.backoff_max = Duration::from_secs(8);
    let mut s = session(c, t0);
    // Three quick failures: 0.5, 1, 2 s (jitter 0).
    let mut now = t0;
    for want in [500, 1000, 2000] {
        s.poll_event();
        s.connection_lost(now);
        let (_, retry_at) = closed(&mut s);
        assert_eq!((retry_at - now).as_millis(), want);
        now = retry_at;
        s.handle_timeout(now);
    }
    // Online, dropped at once: the backoff keeps growing (4 s base).
    bring_online(&mut s, now);
    s.connection_lost(now + Duration::from_secs(1));
    let (_, retry_at) = closed(&mut s);
    assert_eq!((retry_at - now - Duration::from_secs(1)).as_millis(), 4000);
    now = retry_at;
    s.handle_timeout(now);
    // Online for backoff_max: the next failure starts over at 0.5 s.
    bring_online(&mut s, now);
    let mut t = now;
    while t < now + Duration::from_secs(8) {
        t += Duration::from_secs(5);
        s.handle_timeout(t);
        if let Some(Packet::PingReq) = drain(&mut s, t).first() {
            s.handle_input(&[0xd0, 0x00], t);
        }
    }
    s.connection_lost(t);
    let (_, retry_at) = closed(&mut s);
    assert_eq!((retry_at - t).as_millis(), 500);
}

#[test]
fn keepalive_pings_and_detects_a_dead_broker() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    bring_online(&mut s, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + KA));
    s.handle_timeout(t0 + KA - Duration::from_millis(1));
    assert!(drain(&mut s, t0).is_empty(), "no ping before the keepalive");
    let t1 = t0 + KA;
    s.handle_timeout(t1);
    assert_eq!(drain(&mut s, t1), vec![Packet::PingReq]);
    // Answered: the next ping one keepalive later, not before.
    s.handle_input(&[0xd0, 0x00], t1 + Duration::from_secs(1));
    assert_eq!(s.poll_timeout(), Some(t1 + KA));
    let t2 = t1 + KA;
    s.handle_timeout(t2);
    assert_eq!(drain(&mut s, t2), vec![Packet::PingReq]);
    // Not answered: dead one keepalive later.
    s.handle_timeout(t2 + KA - Duration::from_millis(1));
    assert!(s.is_online());
    s.handle_timeout(t2 + KA);
    assert_eq!(closed(&mut s).0, CloseReason::BrokerTimeout);
}

#[test]
fn keepalive_is_whole_seconds_of_at_least_one() {
    let t0 = origin();
    let mut c = cfg();
    c.keep_alive = Duration::from_millis(10);
    let mut s = session(c, t0);
    bring_online(&mut s, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
}

#[test]
fn traffic_postpones_the_ping() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    bring_online(&mut s, t0);
    let t1 = t0 + Duration::from_secs(20);
    s.publish("qnetd/event", b"x", false, t1).unwrap();
    drain(&mut s, t1);
    s.handle_timeout(t0 + KA);
    assert!(drain(&mut s, t0 + KA).is_empty());
    assert_eq!(s.poll_timeout(), Some(t1 + KA));
}

#[test]
fn connect_and_connack_time_out() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    assert_eq!(s.poll_event(), Some(Event::Connect));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(closed(&mut s).0, CloseReason::ConnectTimeout);
    // Open but no CONNACK: the same deadline counts from the Connect event.
    let t1 = s.poll_timeout().unwrap();
    s.handle_timeout(t1);
    assert_eq!(s.poll_event(), Some(Event::Connect));
    s.connected(t1 + Duration::from_secs(3));
    s.handle_timeout(t1 + Duration::from_secs(10));
    assert_eq!(closed(&mut s).0, CloseReason::ConnectTimeout);
}

#[test]
fn broker_garbage_and_unexpected_packets_close_the_connection() {
    let cases: [&[u8]; 5] = [
        &[0xf0, 0x00],                         // reserved packet type 15
        &[0x20, 0xff, 0xff, 0xff, 0xff, 0x01], // malformed remaining length
        &[0x30, 0xff, 0x7f],                   // PUBLISH larger than the cap
        &[0x30, 0x03, 0x00, 0x01, b'a'],       // a PUBLISH we never asked for
        &[0x20, 0x00],                         // CONNACK without a body
    ];
    for bytes in cases {
        let t0 = origin();
        let mut s = session(cfg(), t0);
        bring_online(&mut s, t0);
        s.handle_input(bytes, t0);
        let (reason, _) = closed(&mut s);
        assert!(
            matches!(reason, CloseReason::ProtocolError(_)),
            "{bytes:?}: {reason:?}"
        );
    }
    // A second CONNACK while online.
    let t0 = origin();
    let mut s = session(cfg(), t0);
    bring_online(&mut s, t0);
    s.handle_input(&connack(ConnectReturnCode::Success), t0);
    assert!(matches!(closed(&mut s).0, CloseReason::ProtocolError(_)));
}

#[test]
fn input_split_at_every_byte_is_reassembled() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    s.poll_event();
    s.connected(t0);
    let mut bytes = connack(ConnectReturnCode::Success);
    bytes.extend_from_slice(&[0xd0, 0x00]);
    for b in &bytes {
        s.handle_input(std::slice::from_ref(b), t0);
    }
    assert_eq!(s.poll_event(), Some(Event::Online));
    assert_eq!(s.poll_event(), None);
}

#[test]
fn close_sends_offline_and_disconnect_then_stays_quiet() {
    let t0 = origin();
    let mut s = session(cfg(), t0);
    bring_online(&mut s, t0);
    s.close(t0);
    let sent = drain(&mut s, t0);
    assert_eq!(
        publishes(&sent),
        vec![(
            "qnetd/status".into(),
            b"offline".to_vec(),
            QoS::AtMostOnce,
            true
        )]
    );
    assert_eq!(sent.last(), Some(&Packet::Disconnect));
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + Duration::from_secs(3600));
    assert_eq!(s.poll_event(), None);
}

proptest::proptest! {
    #[test]
    fn hostile_broker_bytes_never_panic(chunks in proptest::collection::vec(
        proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..8)) {
        let t0 = origin();
        let mut s = session(cfg(), t0);
        s.poll_event();
        s.connected(t0);
        for c in &chunks {
            s.handle_input(c, t0);
            let _ = s.poll_transmit(t0);
        }
        while let Some(e) = s.poll_event() {
            if let Event::Closed { retry_at, .. } = e {
                proptest::prop_assert!(retry_at > t0);
            }
        }
    }
}
