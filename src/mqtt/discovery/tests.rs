//! The discovery entities, payloads and diffing, checked against Home
//! Assistant's discovery schema.

use super::*;
use crate::mgmt::json::VoteName;
use serde_json::Value;
use std::collections::BTreeSet;

/// Any instant will do: the model only compares instants.
#[allow(
    clippy::disallowed_methods,
    reason = "an arbitrary origin of test time"
)]
fn origin() -> Instant {
    Instant::now()
}

/// A node: (id, last vote, client certificate verified).
type N<'a> = (u32, Option<&'a str>, bool);

/// A report with the given clusters, through the document's own
/// deserializer (the `--json` schema).
fn report(clusters: &[(&str, &[N<'_>])]) -> Report {
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|(name, nodes)| {
            json!({
                "name": name,
                "algorithm": "ffsplit",
                "kap_tie_breaker": false,
                "tie_breaker": {"mode": "lowest", "node_id": null},
                "nodes": nodes.iter().map(|(id, vote, verified)| json!({
                    "node_id": id,
                    "address": "127.0.0.1:5000",
                    "tls": {"active": verified, "client_certificate_verified": verified},
                    "heartbeat_interval_ms": 8000,
                    "ring_id": {"node_id": 1, "seq": 4},
                    "config_version": null,
                    "config_node_list": [],
                    "membership_node_list": [],
                    "quorum_node_list": [],
                    "quorate": null,
                    "heuristics": {"current": "undefined", "membership": "undefined", "regular": "undefined"},
                    "keep_active_partition_tie_breaker": false,
                    "last_vote": vote,
                    "last_ack_nack_vote": vote.filter(|v| *v == "ack" || *v == "nack"),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let nodes: usize = clusters
        .iter()
        .map(|c| c["nodes"].as_array().map_or(0, Vec::len))
        .sum();
    serde_json::from_value(json!({
        "schema_version": 1,
        "server": {
            "version": "0.1.0", "address": "*", "port": 5403, "tls": "supported",
            "client_cert_required": true, "max_clients": null,
            "max_send_size": 32768, "max_receive_size": 32768,
            "connected_clients": nodes, "connected_clusters": clusters.len(),
        },
        "clusters": clusters,
    }))
    .expect("test report matches the --json schema")
}

fn disc(remove_after: Duration) -> Discovery {
    Discovery::new(DiscoveryConfig {
        remove_after,
        ..DiscoveryConfig::default()
    })
}

/// Retained messages as topic → payload (the broker's view).
fn apply(broker: &mut BTreeMap<String, Vec<u8>>, msgs: &[Message]) {
    for m in msgs.iter().filter(|m| m.retain) {
        if m.payload.is_empty() {
            broker.remove(&m.topic);
        } else {
            broker.insert(m.topic.clone(), m.payload.clone());
        }
    }
}

fn payload_of<'a>(msgs: &'a [Message], topic: &str) -> Option<&'a [u8]> {
    msgs.iter()
        .find(|m| m.topic == topic)
        .map(|m| &m.payload[..])
}

mod ha_schema;
mod learn;

#[test]
fn first_report_announces_valid_entities_with_states() {
    let t0 = origin();
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    let msgs = d.update(
        &report(&[(
            "homelab",
            &[(1, Some("ack"), true), (2, Some("nack"), false)],
        )]),
        t0,
    );
    let mut broker = BTreeMap::new();
    apply(&mut broker, &msgs);
    ha_schema::check_all(&broker);
    let count = |c: &str| {
        broker
            .keys()
            .filter(|t| t.starts_with(&format!("homeassistant/{c}/")))
            .count()
    };
    // Server 4 sensors; cluster: 1 binary, 1 sensor, 1 event; per node 2 binary + 2 sensors.
    assert_eq!(
        (count("sensor"), count("binary_sensor"), count("event")),
        (4 + 1 + 4, 1 + 4, 1)
    );
    let state = |t: &str| String::from_utf8(broker[t].clone()).unwrap();
    assert_eq!(state("qnetd/homelab/node1/vote"), "ACK");
    assert_eq!(state("qnetd/homelab/node2/vote"), "NACK");
    assert_eq!(state("qnetd/homelab/has_vote"), "ON");
    assert_eq!(state("qnetd/homelab/votes"), "1");
    assert_eq!(state("qnetd/homelab/node1/tls_verified"), "ON");
    assert_eq!(state("qnetd/homelab/node2/tls_verified"), "OFF");
    assert_eq!(state("qnetd/homelab/node1/heartbeat_interval"), "8000");
    assert_eq!(state("qnetd/server/connected_clients"), "2");
    assert_eq!(state("qnetd/server/tls"), "supported");
    let attrs: Value = serde_json::from_slice(&broker["qnetd/homelab/attributes"]).unwrap();
    assert_eq!(attrs["algorithm"], "ffsplit");
    assert_eq!(attrs["nodes_holding_the_vote"], json!([1]));
    // The ids the brief names.
    let vote: Value = serde_json::from_slice(
        &broker["homeassistant/sensor/qnetd/qnetd_homelab_node1_vote/config"],
    )
    .unwrap();
    assert_eq!(vote["unique_id"], "qnetd_homelab_node1_vote");
    assert_eq!(vote["default_entity_id"], "sensor.qnetd_homelab_node1_vote");
    assert_eq!(vote["device"]["via_device"], "qnetd_server");
    assert!(msgs.iter().all(|m| m.retain), "no events on first sight");
}

#[test]
fn same_report_again_publishes_nothing() {
    let t0 = origin();
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    let r = report(&[("homelab", &[(1, Some("ack"), false)])]);
    assert!(!d.update(&r, t0).is_empty());
    for i in 1..10 {
        assert_eq!(
            d.update(&r, t0 + Duration::from_secs(i * 8)),
            vec![],
            "heartbeat {i}"
        );
    }
}

#[test]
fn vote_change_publishes_only_changed_states_and_one_event() {
    let t0 = origin();
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    let mut broker = BTreeMap::new();
    apply(
        &mut broker,
        &d.update(
            &report(&[(
                "homelab",
                &[(1, Some("ack"), false), (2, Some("nack"), false)],
            )]),
            t0,
        ),
    );
    let msgs = d.update(
        &report(&[(
            "homelab",
            &[(1, Some("nack"), false), (2, Some("ack"), false)],
        )]),
        t0,
    );
    let topics: BTreeSet<&str> = msgs.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        BTreeSet::from([
            "qnetd/homelab/attributes",
            "qnetd/homelab/node1/vote",
            "qnetd/homelab/node2/vote",
            "qnetd/homelab/vote_event",
        ])
    );
    let events: Vec<Value> = msgs
        .iter()
        .filter(|m| !m.retain)
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            json!({"event_type": "nack", "node_id": 1, "previous": "ACK"}),
            json!({"event_type": "ack", "node_id": 2, "previous": "NACK"}),
        ]
    );
    let config: Value = serde_json::from_slice(
        &broker["homeassistant/event/qnetd/qnetd_homelab_vote_event/config"],
    )
    .unwrap();
    for e in &events {
        assert!(
            config["event_types"]
                .as_array()
                .unwrap()
                .contains(&e["event_type"])
        );
    }
    // NO_CHANGE keeps the ACK/NACK in effect: nothing to publish.
    let mut r = report(&[(
        "homelab",
        &[(1, Some("nack"), false), (2, Some("ack"), false)],
    )]);
    r.clusters[0].nodes[1].last_vote = Some(VoteName::NoChange);
    assert_eq!(d.update(&r, t0), vec![]);
    // The last ACK goes: the partition has no vote.
    let msgs = d.update(
        &report(&[(
            "homelab",
            &[(1, Some("nack"), false), (2, Some("nack"), false)],
        )]),
        t0,
    );
    assert_eq!(
        payload_of(&msgs, "qnetd/homelab/has_vote"),
        Some(&b"OFF"[..])
    );
    assert_eq!(payload_of(&msgs, "qnetd/homelab/votes"), Some(&b"0"[..]));
}

#[test]
fn node_away_shows_disconnected_then_is_removed() {
    let t0 = origin();
    let keep = Duration::from_secs(600);
    let mut d = disc(keep);
    let mut broker = BTreeMap::new();
    apply(
        &mut broker,
        &d.update(
            &report(&[("homelab", &[(1, Some("ack"), true), (2, Some("ack"), true)])]),
            t0,
        ),
    );
    let before = broker.len();
    assert_eq!(d.poll_timeout(), None);
    let t1 = t0 + Duration::from_secs(10);
    let msgs = d.update(&report(&[("homelab", &[(1, Some("ack"), true)])]), t1);
    apply(&mut broker, &msgs);
    assert_eq!(broker.len(), before, "nothing deleted yet");
    let state = |b: &BTreeMap<String, Vec<u8>>, t: &str| String::from_utf8(b[t].clone()).unwrap();
    assert_eq!(state(&broker, "qnetd/homelab/node2/connected"), "OFF");
    assert_eq!(state(&broker, "qnetd/homelab/node2/vote"), "NONE");
    assert_eq!(state(&broker, "qnetd/homelab/node2/tls_verified"), "OFF");
    assert_eq!(
        state(&broker, "qnetd/homelab/node2/heartbeat_interval"),
        "None"
    );
    assert_eq!(state(&broker, "qnetd/homelab/votes"), "1");
    ha_schema::check_all(&broker);
    assert_eq!(d.poll_timeout(), Some(t1 + keep));
    // Just before the deadline: nothing; at it: node 2 is deleted.
    let r = report(&[("homelab", &[(1, Some("ack"), true)])]);
    assert_eq!(d.update(&r, t1 + keep - Duration::from_secs(1)), vec![]);
    let msgs = d.update(&r, t1 + keep);
    // 4 configs and 4 states of node 2 deleted; the node list changed.
    let (deleted, updated): (Vec<_>, Vec<_>) = msgs.iter().partition(|m| m.payload.is_empty());
    assert_eq!(deleted.len(), 8, "{deleted:?}");
    assert!(
        deleted
            .iter()
            .all(|m| m.retain && m.topic.contains("node2"))
    );
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].topic, "qnetd/homelab/attributes");
    apply(&mut broker, &msgs);
    assert!(broker.keys().all(|t| !t.contains("node2")));
    ha_schema::check_all(&broker);
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn node_that_comes_back_fires_an_event() {
    let t0 = origin();
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    d.update(&report(&[("c", &[(1, Some("ack"), false)])]), t0);
    let msgs = d.update(&report(&[("c", &[])]), t0);
    assert!(
        msgs.iter()
            .any(|m| !m.retain && m.payload.starts_with(br#"{"event_type":"none""#)),
        "{msgs:?}"
    );
    let msgs = d.update(&report(&[("c", &[(1, Some("ack"), false)])]), t0);
    let ev: Value =
        serde_json::from_slice(&msgs.iter().find(|m| !m.retain).unwrap().payload).unwrap();
    assert_eq!(
        ev,
        json!({"event_type": "ack", "node_id": 1, "previous": "NONE"})
    );
}

#[test]
fn cluster_gone_is_removed_at_once_with_zero_delay_and_forget_unpairs() {
    let t0 = origin();
    let mut d = disc(Duration::ZERO);
    let mut broker = BTreeMap::new();
    apply(
        &mut broker,
        &d.update(
            &report(&[
                ("a", &[(1, Some("ack"), false)]),
                ("b", &[(1, Some("ack"), false)]),
            ]),
            t0,
        ),
    );
    apply(
        &mut broker,
        &d.update(&report(&[("b", &[(1, Some("ack"), false)])]), t0),
    );
    assert!(
        broker
            .keys()
            .all(|t| !t.contains("_a_") && !t.starts_with("qnetd/a/")),
        "{:?}",
        broker.keys()
    );
    assert!(broker.keys().any(|t| t.starts_with("qnetd/b/")));
    ha_schema::check_all(&broker);
    // Unpair while connected: gone now, back with the next report.
    apply(&mut broker, &d.forget("b"));
    assert!(
        broker
            .keys()
            .all(|t| !t.contains("_b_") && !t.starts_with("qnetd/b/"))
    );
    assert_eq!(d.forget("b"), vec![]);
    apply(
        &mut broker,
        &d.update(&report(&[("b", &[(1, Some("ack"), false)])]), t0),
    );
    assert!(broker.contains_key("qnetd/b/node1/vote"));
}

#[test]
fn hostile_cluster_names_stay_in_their_level() {
    let names = [
        "a/b",
        "+",
        "#",
        "x/#",
        "pro d",
        "pro-d",
        "Prod",
        "prod",
        "",
        "\0\n\u{1b}[31m",
        "é",
        "homeassistant/sensor/qnetd/qnetd_server_version/config",
        "../..",
    ];
    let long = "A".repeat(10_000);
    let mut all: Vec<&str> = names.to_vec();
    all.push(&long);
    let clusters: Vec<(&str, &[N<'_>])> = all
        .iter()
        .map(|n| (*n, &[(1, Some("ack"), false)][..]))
        .collect();
    let t0 = origin();
    let mut d = disc(DEFAULT_REMOVE_AFTER);
    let msgs = d.update(&report(&clusters), t0);
    let mut broker = BTreeMap::new();
    apply(&mut broker, &msgs);
    ha_schema::check_all(&broker);
    let ids: BTreeSet<String> = all.iter().map(|n| cluster_id(n)).collect();
    assert_eq!(ids.len(), all.len(), "ids collide: {ids:?}");
    for m in &msgs {
        assert!(!m.topic.contains(['+', '#', '\0', ' ']), "{}", m.topic);
        assert!(
            m.topic.split('/').all(|l| !l.is_empty() && l != ".."),
            "{}",
            m.topic
        );
        assert!(
            m.payload.len() < 2048,
            "{}: {} bytes",
            m.topic,
            m.payload.len()
        );
    }
    // Per cluster: 3 cluster entities + 4 node entities.
    let per_cluster = broker
        .keys()
        .filter(|t| t.starts_with("homeassistant/") && !t.contains("_server_"))
        .count();
    assert_eq!(per_cluster, all.len() * 7);
    // The name survives, JSON-escaped, in the attributes.
    let id = cluster_id("a/b");
    let attrs: Value = serde_json::from_slice(&broker[&format!("qnetd/{id}/attributes")]).unwrap();
    assert_eq!(attrs["cluster_name"], "a/b");
}

#[test]
fn cluster_ids() {
    assert_eq!(cluster_id("homelab"), "homelab");
    assert_eq!(cluster_id("pve2"), "pve2");
    let pve = cluster_id("pve-cluster");
    assert!(
        pve.starts_with("pve_cluster_") && pve.len() == "pve_cluster_".len() + 8,
        "{pve}"
    );
    assert_eq!(pve, cluster_id("pve-cluster"), "stable");
    assert!(cluster_id("").starts_with("c_"));
    assert!(cluster_id("//").starts_with("c_"));
    assert_ne!(cluster_id("Prod"), cluster_id("prod"));
    assert!(cluster_id(&"x".repeat(100)).len() <= MAX_ID_SLUG + 9);
}

#[test]
fn same_report_same_messages_after_a_restart() {
    let r = report(&[
        ("pve-cluster", &[(1, Some("ack"), true)]),
        ("homelab", &[(3, None, false)]),
    ]);
    let t0 = origin();
    assert_eq!(
        disc(DEFAULT_REMOVE_AFTER).update(&r, t0),
        disc(DEFAULT_REMOVE_AFTER).update(&r, t0)
    );
}

#[test]
fn topic_prefix_names_the_instance() {
    let mut d = Discovery::new(DiscoveryConfig {
        topic_prefix: "site/B-2".into(),
        ..DiscoveryConfig::default()
    });
    let msgs = d.update(&report(&[("c", &[(1, Some("ack"), false)])]), origin());
    let mut broker = BTreeMap::new();
    apply(&mut broker, &msgs);
    ha_schema::check_all(&broker);
    assert!(broker.contains_key("homeassistant/sensor/site_b-2/site_b-2_c_node1_vote/config"));
    assert!(broker.contains_key("site/B-2/c/node1/vote"));
    let c: Value = serde_json::from_slice(
        &broker["homeassistant/sensor/site_b-2/site_b-2_c_node1_vote/config"],
    )
    .unwrap();
    assert_eq!(c["availability_topic"], "site/B-2/status");
}

#[test]
fn prefixes_are_validated() {
    assert_eq!(DiscoveryConfig::default().validate(), Ok(()));
    for (d, t) in [
        ("", "q"),
        ("h", ""),
        ("h/#", "q"),
        ("h", "q/+"),
        ("h", "/q"),
        ("h", "q/"),
        ("h//a", "q"),
        ("h", "q\n"),
    ] {
        let c = DiscoveryConfig {
            discovery_prefix: d.into(),
            topic_prefix: t.into(),
            remove_after: Duration::ZERO,
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("prefix"), "{d:?} {t:?}: {e}");
    }
    let long = DiscoveryConfig {
        topic_prefix: "a".repeat(MAX_PREFIX_LEN + 1),
        ..DiscoveryConfig::default()
    };
    assert!(long.validate().is_err());
}
