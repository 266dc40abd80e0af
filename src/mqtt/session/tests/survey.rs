//! The survey after each CONNACK against a scripted broker: collecting,
//! the cap, a refusal, broker misbehaviour and oversized publishes.

use super::*;
use mqttbytes_ng::v4::{SubAck, SubscribeReasonCode, UnsubAck};

const FILTER: &str = "homeassistant/+/qnetd/+/config";

fn survey_cfg() -> SessionConfig {
    let mut c = cfg();
    c.survey = Some(FILTER.into());
    c.survey_window = Duration::from_secs(2);
    c
}

/// A PUBLISH from the broker, QoS 0.
fn incoming(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    encode(&Packet::Publish(Publish {
        retain,
        ..Publish::new(topic, QoS::AtMostOnce, payload)
    }))
}

/// The SUBSCRIBE among `packets`: its packet id, after checking the filter.
fn subscribe_pkid(packets: &[Packet]) -> u16 {
    let subs: Vec<_> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Subscribe(s) => Some(s),
            _ => None,
        })
        .collect();
    let [s] = subs.as_slice() else {
        panic!("expected one SUBSCRIBE: {packets:?}")
    };
    assert_eq!(s.filters.len(), 1);
    assert_eq!(
        (s.filters[0].path.as_str(), s.filters[0].qos),
        (FILTER, QoS::AtMostOnce)
    );
    s.pkid
}

fn suback(pkid: u16, code: SubscribeReasonCode) -> Vec<u8> {
    encode(&Packet::SubAck(SubAck::new(pkid, vec![code])))
}

/// Online with a granted survey subscription; returns its packet id.
fn surveying(s: &mut Session, now: Instant) -> u16 {
    let pkid = subscribe_pkid(&bring_online(s, now));
    s.handle_input(
        &suback(pkid, SubscribeReasonCode::Success(QoS::AtMostOnce)),
        now,
    );
    pkid
}

/// The UNSUBSCRIBE among `packets`: its packet id.
fn unsubscribe_pkid(packets: &[Packet]) -> u16 {
    match packets {
        [Packet::Unsubscribe(u)] => {
            assert_eq!(u.topics, vec![FILTER.to_string()]);
            u.pkid
        }
        other => panic!("expected UNSUBSCRIBE, got {other:?}"),
    }
}

/// The window ends at `window`: UNSUBSCRIBE, UNSUBACK; the event.
fn end_survey(s: &mut Session, window: Instant) -> Option<Event> {
    s.handle_timeout(window);
    let unsub = unsubscribe_pkid(&drain(s, window));
    s.handle_input(&encode(&Packet::UnsubAck(UnsubAck::new(unsub))), window);
    s.poll_event()
}

#[test]
fn survey_collects_retained_topics_once_per_connection() {
    let t0 = origin();
    let mut s = session(survey_cfg(), t0);
    s.publish("qnetd/x", b"1", true, t0).unwrap();
    let packets = bring_online(&mut s, t0);
    // online, then the SUBSCRIBE, then the retained state.
    assert!(matches!(packets[1], Packet::Subscribe(_)), "{packets:?}");
    let pkid = subscribe_pkid(&packets);
    assert!(publishes(&packets).iter().any(|p| p.0 == "qnetd/x"));
    ack_all(&mut s, &packets, t0);
    s.handle_input(
        &suback(pkid, SubscribeReasonCode::Success(QoS::AtMostOnce)),
        t0,
    );
    let mut burst = Vec::new();
    burst.extend(incoming("homeassistant/sensor/qnetd/a/config", b"{}", true));
    burst.extend(incoming(
        "homeassistant/sensor/qnetd/gone/config",
        b"",
        true,
    ));
    burst.extend(incoming(
        "homeassistant/sensor/qnetd/live/config",
        b"{}",
        false,
    ));
    burst.extend(incoming("homeassistant/sensor/qnetd/b/config", b"{}", true));
    s.handle_input(&burst, t0);
    assert_eq!(s.poll_event(), None);
    let window = t0 + Duration::from_secs(2);
    assert_eq!(s.poll_timeout(), Some(window));
    s.handle_timeout(window - Duration::from_millis(1));
    assert_eq!(drain(&mut s, window), vec![]);
    s.handle_timeout(window);
    let unsub = unsubscribe_pkid(&drain(&mut s, window));
    assert_ne!(unsub, pkid);
    // Still collected until the UNSUBACK.
    s.handle_input(
        &incoming("homeassistant/event/qnetd/c/config", b"{}", true),
        window,
    );
    s.handle_input(&encode(&Packet::UnsubAck(UnsubAck::new(unsub))), window);
    assert_eq!(
        s.poll_event(),
        Some(Event::Surveyed {
            topics: vec![
                "homeassistant/sensor/qnetd/a/config".into(),
                "homeassistant/sensor/qnetd/b/config".into(),
                "homeassistant/event/qnetd/c/config".into(),
            ],
            truncated: false,
        })
    );
    // Afterwards: ignored, no second survey on this connection.
    s.handle_input(
        &incoming("homeassistant/sensor/qnetd/d/config", b"{}", true),
        window,
    );
    let later = window + Duration::from_secs(60);
    s.handle_timeout(later);
    assert!(s.is_online());
    assert_eq!(s.poll_event(), None);
    assert!(
        drain(&mut s, later)
            .iter()
            .all(|p| matches!(p, Packet::PingReq)),
        "only a ping"
    );
    // A reconnect surveys again.
    s.connection_lost(later);
    let (_, retry) = closed(&mut s);
    s.handle_timeout(retry);
    subscribe_pkid(&bring_online(&mut s, retry));
}

#[test]
fn survey_is_capped_and_a_refusal_is_reported() {
    let t0 = origin();
    let mut c = survey_cfg();
    c.max_survey_topics = 2;
    let mut s = session(c, t0);
    surveying(&mut s, t0);
    for t in ["x/1", "x/2", "x/3", "x/4"] {
        s.handle_input(&incoming(t, b"{}", true), t0);
    }
    assert_eq!(
        end_survey(&mut s, t0 + Duration::from_secs(2)),
        Some(Event::Surveyed {
            topics: vec!["x/1".into(), "x/2".into()],
            truncated: true,
        })
    );
    // Refused by the broker's ACL: reported, nothing collected, no UNSUBSCRIBE.
    let mut s = session(survey_cfg(), t0);
    let pkid = subscribe_pkid(&bring_online(&mut s, t0));
    s.handle_input(&suback(pkid, SubscribeReasonCode::Failure), t0);
    assert_eq!(s.poll_event(), Some(Event::SurveyRefused));
    s.handle_input(&incoming("x/1", b"{}", true), t0);
    let window = t0 + Duration::from_secs(2);
    s.handle_timeout(window);
    assert_eq!(drain(&mut s, window), vec![]);
    assert_eq!(s.poll_event(), None);
    assert!(s.is_online());
}

#[test]
fn survey_broker_misbehaviour() {
    let t0 = origin();
    // No SUBACK within a keepalive: the broker is dead.
    let mut s = session(survey_cfg(), t0);
    bring_online(&mut s, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + KA));
    s.handle_timeout(t0 + KA);
    assert_eq!(closed(&mut s).0, CloseReason::BrokerTimeout);
    // No UNSUBACK within a keepalive either.
    let mut s = session(survey_cfg(), t0);
    surveying(&mut s, t0);
    let window = t0 + Duration::from_secs(2);
    s.handle_timeout(window);
    drain(&mut s, window);
    s.handle_timeout(window + KA);
    assert_eq!(closed(&mut s).0, CloseReason::BrokerTimeout);
    // A SUBACK or UNSUBACK of another packet id, a PUBLISH above QoS 0.
    let mut qos1 = Publish::new("x/1", QoS::AtLeastOnce, "{}");
    qos1.pkid = 7;
    qos1.retain = true;
    for bytes in [
        suback(999, SubscribeReasonCode::Success(QoS::AtMostOnce)),
        encode(&Packet::UnsubAck(UnsubAck::new(999))),
        encode(&Packet::Publish(qos1)),
    ] {
        let mut s = session(survey_cfg(), t0);
        surveying(&mut s, t0);
        s.handle_input(&bytes, t0);
        assert!(
            matches!(closed(&mut s).0, CloseReason::ProtocolError(_)),
            "{bytes:?}"
        );
    }
}

#[test]
fn survey_drops_an_oversized_publish_as_it_streams_in() {
    let t0 = origin();
    let mut s = session(survey_cfg(), t0);
    surveying(&mut s, t0);
    let mut bytes = incoming("big", &vec![b'x'; 3 * MAX_INCOMING_PACKET], true);
    bytes.extend(incoming("small", b"{}", true));
    for chunk in bytes.chunks(1000) {
        s.handle_input(chunk, t0);
        assert!(s.is_online());
        assert!(s.input.len() <= 2000, "{}", s.input.len());
    }
    assert_eq!(
        end_survey(&mut s, t0 + Duration::from_secs(2)),
        Some(Event::Surveyed {
            topics: vec!["small".into()],
            truncated: false,
        })
    );
}
