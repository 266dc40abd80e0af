//! Learning the entities of an earlier run from the survey's topics:
//! stale ones removed after the delay, returning ones kept, the strict
//! topic parser, the cap, and every config small enough to be surveyed.

use super::*;

/// The broker's retained state after one run of `d` on `r`.
fn published(d: &mut Discovery, r: &Report, now: Instant) -> BTreeMap<String, Vec<u8>> {
    let mut broker = BTreeMap::new();
    apply(&mut broker, &d.update(r, now));
    broker
}

/// The config topics of a broker state (what the survey finds).
fn config_topics(broker: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    broker
        .keys()
        .filter(|t| t.starts_with("homeassistant/"))
        .cloned()
        .collect()
}

#[test]
fn a_restart_learns_stale_entities_and_removes_them_after_the_delay() {
    let t0 = origin();
    let keep = Duration::from_secs(600);
    let before = report(&[
        ("homelab", &[(1, Some("ack"), true), (2, Some("ack"), true)]),
        ("pve-cluster", &[(1, Some("ack"), true)]),
    ]);
    let mut broker = published(&mut disc(keep), &before, t0);
    // A fresh process: homelab's node 1 is back, the rest never comes.
    let now = report(&[("homelab", &[(1, Some("ack"), true)])]);
    let mut d = disc(keep);
    let t1 = t0 + Duration::from_secs(5);
    apply(&mut broker, &d.update(&now, t1));
    assert_eq!(d.poll_timeout(), None);
    let learned = d.learn(&config_topics(&broker), t1);
    // pve-cluster, its node 1, homelab's node 2.
    assert_eq!((learned.away, learned.over_cap), (3, 0));
    // Node 2 of the known cluster shows as not connected; nothing of the
    // cluster whose name is unknown is published.
    assert!(learned.messages.iter().all(|m| m.topic.contains("homelab")));
    apply(&mut broker, &learned.messages);
    let state = |b: &BTreeMap<String, Vec<u8>>, t: &str| String::from_utf8(b[t].clone()).unwrap();
    assert_eq!(state(&broker, "qnetd/homelab/node2/connected"), "OFF");
    assert_eq!(state(&broker, "qnetd/homelab/node2/vote"), "NONE");
    let pve = cluster_id("pve-cluster");
    assert_eq!(state(&broker, &format!("qnetd/{pve}/node1/vote")), "ACK");
    ha_schema::check_all(&broker);
    // The same survey again (a broker reconnect) changes nothing.
    let again = d.learn(&config_topics(&broker), t1 + Duration::from_secs(60));
    assert_eq!((again.away, again.messages), (0, vec![]));
    assert_eq!(d.poll_timeout(), Some(t1 + keep));
    assert_eq!(d.update(&now, t1 + keep - Duration::from_secs(1)), vec![]);
    let msgs = d.update(&now, t1 + keep);
    apply(&mut broker, &msgs);
    // Exactly what a process that only ever saw `now` has at the broker.
    assert_eq!(broker, published(&mut disc(keep), &now, t1));
    let deleted = msgs.iter().filter(|m| m.payload.is_empty()).count();
    // pve-cluster: 7 configs, 7 states (has_vote, votes, attributes, 4 of
    // node 1); homelab's node 2: 4 configs and 4 states.
    assert_eq!(deleted, 7 + 7 + 4 + 4, "{msgs:#?}");
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn a_learned_cluster_that_connects_keeps_its_entities() {
    let t0 = origin();
    let keep = Duration::from_secs(600);
    let r = report(&[("pve-cluster", &[(1, Some("ack"), true)])]);
    let mut broker = published(&mut disc(keep), &r, t0);
    let mut d = disc(keep);
    let empty = report(&[]);
    apply(&mut broker, &d.update(&empty, t0));
    assert_eq!(d.learn(&config_topics(&broker), t0).away, 2);
    // It connects: every config and state republished as it was, no
    // vote event (the learned state is not a previous vote).
    let msgs = d.update(&r, t0 + Duration::from_secs(1));
    assert!(msgs.iter().all(|m| m.retain && !m.payload.is_empty()));
    apply(&mut broker, &msgs);
    assert_eq!(broker, published(&mut disc(keep), &r, t0));
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(d.update(&r, t0 + keep * 2), vec![]);
    // Unpair reaches a learned cluster too.
    let mut d = disc(keep);
    d.update(&empty, t0);
    d.learn(&config_topics(&broker), t0);
    let msgs = d.forget("pve-cluster");
    apply(&mut broker, &msgs);
    assert!(broker.keys().all(|t| !t.contains("pve")), "{broker:#?}");
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn every_config_topic_of_a_cluster_is_learned_and_nothing_else() {
    let t0 = origin();
    let names = ["homelab", "pve-cluster", "Prod", "", "x/#", "my node 1"];
    let clusters: Vec<(&str, &[N<'_>])> = names
        .iter()
        .map(|n| {
            (
                *n,
                &[(1, Some("ack"), false), (4_000_000_000, None, false)][..],
            )
        })
        .collect();
    let r = report(&clusters);
    let mut src = disc(DEFAULT_REMOVE_AFTER);
    let broker = published(&mut src, &r, t0);
    let d = disc(DEFAULT_REMOVE_AFTER);
    let mut found = BTreeSet::new();
    for topic in config_topics(&broker) {
        match d.parse_config_topic(&topic) {
            Some(parsed) => {
                found.insert(parsed);
            }
            None => assert!(topic.contains("/qnetd_server_"), "not learned: {topic}"),
        }
    }
    // Each cluster itself and its two nodes, nothing else.
    assert_eq!(found.len(), names.len() * 3, "{found:?}");
    for n in names {
        let cid = cluster_id(n);
        for node in [None, Some(1), Some(4_000_000_000)] {
            assert!(found.contains(&(cid.clone(), node)), "{n} {node:?}");
        }
    }
    assert_eq!(src.config_filter(), "homeassistant/+/qnetd/+/config");
}

#[test]
fn foreign_and_malformed_topics_are_ignored() {
    let t0 = origin();
    let hostile = [
        "",
        "/",
        "homeassistant",
        "homeassistant/sensor/qnetd/qnetd_homelab_node1_vote",
        "homeassistant/sensor/qnetd/qnetd_homelab_node1_vote/config/x",
        "homeassistant/sensor/qnetd/qnetd_homelab_node1_vote/configx",
        "homeassistant/sensor/other/qnetd_homelab_node1_vote/config",
        "homeassistant/sensor/qnetd/other_homelab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetdx_homelab_node1_vote/config",
        "hass/sensor/qnetd/qnetd_homelab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_server_version/config",
        "homeassistant/sensor/qnetd/qnetd_server_connected_clients/config",
        "homeassistant/binary_sensor/qnetd/qnetd_homelab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_has_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_node01_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_node+1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_node_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_node4294967296_vote/config",
        "homeassistant/sensor/qnetd/qnetd_Homelab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd__node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_home lab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_home/lab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_a__0123abcd_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd__0123abcd_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_a_0123ABCD_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_a_0123abc_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_é_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_node1_votes/config",
        "homeassistant/event/qnetd/qnetd_homelab_node1_vote_event/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_node1_heartbeat_interval_x/config",
        "homeassistant//qnetd/qnetd_homelab_votes/config",
    ];
    let long = format!(
        "homeassistant/sensor/qnetd/qnetd_{}_votes/config",
        "a".repeat(33)
    );
    let mut topics: Vec<String> = hostile.iter().map(|t| (*t).to_string()).collect();
    topics.push(long);
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    d.update(&report(&[]), t0);
    let learned = d.learn(&topics, t0);
    assert_eq!((learned.away, learned.over_cap), (0, 0));
    assert_eq!(learned.messages, vec![]);
    assert_eq!(d.poll_timeout(), None);
    // The nearest valid ones are learned.
    for ok in [
        "homeassistant/sensor/qnetd/qnetd_homelab_node1_vote/config",
        "homeassistant/sensor/qnetd/qnetd_homelab_votes/config",
        "homeassistant/sensor/qnetd/qnetd_a_b_0123abcd_node4294967295_vote/config",
        "homeassistant/event/qnetd/qnetd_c_0123abcd_vote_event/config",
    ] {
        assert!(d.parse_config_topic(ok).is_some(), "{ok}");
    }
}

#[test]
fn learning_is_capped() {
    let t0 = origin();
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    d.update(&report(&[]), t0);
    let topics: Vec<String> = (0..MAX_LEARNED + 10)
        .map(|i| format!("homeassistant/sensor/qnetd/qnetd_c{i}_votes/config"))
        .collect();
    let learned = d.learn(&topics, t0);
    assert_eq!((learned.away, learned.over_cap), (MAX_LEARNED, 10));
    // Known ones are not counted again; new ones stay over the cap.
    let node = ["homeassistant/sensor/qnetd/qnetd_c0_node1_vote/config".to_string()];
    let learned = d.learn(&[topics[0].clone(), node[0].clone()], t0);
    assert_eq!((learned.away, learned.over_cap), (0, 1));
    // They expire: room again.
    let later = t0 + DEFAULT_REMOVE_AFTER;
    let msgs = d.update(&report(&[]), later);
    assert_eq!(
        msgs.iter().filter(|m| m.topic.ends_with("/config")).count(),
        MAX_LEARNED * 3
    );
    assert_eq!(d.learn(&node, later).away, 2);
}

/// Every config fits into what the session decodes from the broker, so
/// the survey after a restart sees all of them.
#[test]
fn the_largest_config_fits_the_survey() {
    let mut d = Discovery::new(DiscoveryConfig {
        discovery_prefix: "h".repeat(MAX_PREFIX_LEN),
        topic_prefix: "t".repeat(MAX_PREFIX_LEN),
        remove_after: Duration::ZERO,
    });
    let name = "\u{1d11e}\"".repeat(100);
    let msgs = d.update(
        &report(&[(&name, &[(u32::MAX, Some("ack"), true)])]),
        origin(),
    );
    let largest = msgs
        .iter()
        .map(|m| 5 + 2 + m.topic.len() + m.payload.len())
        .max()
        .unwrap();
    assert!(largest > 1500, "{largest}");
    assert!(
        largest < crate::mqtt::session::MAX_INCOMING_PACKET / 2,
        "{largest}"
    );
}
