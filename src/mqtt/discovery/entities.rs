//! The entities of [`Discovery`] and their payloads: the discovery
//! config (device, availability, origin, component keys) and the retained
//! state of every entity of the server, of a cluster and of its nodes, as
//! the module documentation of [`super`] lists them.
//!
//! Contract: pure functions of the known clusters and the server report;
//! the same input gives the same topics and payloads byte for byte, and
//! every topic is built here (the topic parser of `learn.rs` rebuilds its
//! topics with [`Builder::config_topic`] to compare them).

use serde_json::{Value, json};

use crate::mgmt::json::{NodeReport, ServerReport, VoteName};
use crate::mqtt::session::{OFFLINE, ONLINE};

use super::{
    Desired, Discovery, DiscoveryConfig, Entity, HAS_VOTE, KnownCluster, KnownNode, NODE_CONNECTED,
    NODE_HEARTBEAT, NODE_TLS, NODE_VOTE, VOTE_EVENT, VOTE_STATES, VOTES, node_object,
};

/// Characters of a cluster name shown in a device name.
const MAX_DISPLAY_NAME: usize = 64;

/// A name for display: control characters dropped, at most 64 characters.
fn display(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DISPLAY_NAME)
        .collect();
    if s.is_empty() { "(unnamed)".into() } else { s }
}

/// The vote a node holds, as the *Node N vote* sensor shows it.
fn vote_state(node: Option<&NodeReport>) -> &'static str {
    let Some(n) = node else { return "NONE" };
    let vote = match n.last_vote {
        Some(VoteName::NoChange) => n.last_ack_nack_vote,
        v => v,
    };
    match vote {
        None => "NONE",
        Some(VoteName::Ack) => "ACK",
        Some(VoteName::Nack) => "NACK",
        Some(VoteName::AskLater) => "ASK_LATER",
        Some(VoteName::WaitForReply) => "WAIT_FOR_REPLY",
        Some(VoteName::NoChange | VoteName::Unknown) => "UNKNOWN",
    }
}

/// A node's report while it and its cluster are connected.
fn connected<'a>(c: &KnownCluster, n: &'a KnownNode) -> Option<&'a NodeReport> {
    n.report
        .as_ref()
        .filter(|_| c.away_since.is_none() && n.away_since.is_none())
}

const fn on_off(b: bool) -> &'static str {
    if b { "ON" } else { "OFF" }
}

/// Entity configs and states for one [`Desired`].
pub(super) struct Builder<'a> {
    cfg: &'a DiscoveryConfig,
    node: &'a str,
}

/// One entity of a group: its kind, name, retained state (`None` for
/// events), and the component-specific keys.
type Spec = (Entity, String, Option<String>, Value);

/// Where a group of entities lives: their device, the object id prefix
/// (after `<node>_`) and the state topic prefix.
struct Group<'a> {
    device: &'a Value,
    object: String,
    topic: String,
}

impl Builder<'_> {
    fn server_identifier(&self) -> String {
        format!("{}_server", self.node)
    }

    /// Unique id and object id of `what` in the group `group_object`.
    pub(super) fn object_id(&self, group_object: &str, what: &str) -> String {
        format!("{}_{group_object}_{what}", self.node)
    }

    /// The discovery config topic of an entity.
    pub(super) fn config_topic(&self, component: &str, object_id: &str) -> String {
        format!(
            "{}/{component}/{}/{object_id}/config",
            self.cfg.discovery_prefix, self.node
        )
    }

    /// Adds the configs (and states) of `specs`, all of one device.
    fn add_group(&self, d: &mut Desired, g: &Group<'_>, specs: Vec<Spec>) {
        for ((component, what), name, state, extra) in specs {
            let object_id = self.object_id(&g.object, what);
            let state_topic = format!("{}/{what}", g.topic);
            let mut config = json!({
                "name": name,
                "unique_id": object_id,
                "default_entity_id": format!("{component}.{object_id}"),
                "state_topic": state_topic,
                "availability_topic": self.cfg.availability_topic(),
                "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
                "device": g.device,
                "origin": {
                    "name": "qnetd",
                    "sw_version": env!("CARGO_PKG_VERSION"),
                },
            });
            if let (Some(obj), Value::Object(extra)) = (config.as_object_mut(), extra) {
                obj.extend(extra);
            }
            let topic = self.config_topic(component, &object_id);
            d.configs
                .insert(topic, serde_json::to_vec(&config).unwrap_or_default());
            if let Some(s) = state {
                d.states.insert(state_topic, s.into_bytes());
            }
        }
    }

    pub(super) fn server(&self, d: &mut Desired, s: &ServerReport) {
        let device = json!({
            "identifiers": [self.server_identifier()],
            "name": "qnetd",
            "manufacturer": "qnetd",
            "model": "Corosync QNetd server",
            "sw_version": s.version,
        });
        let tls = serde_json::to_value(s.tls)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let group = Group {
            device: &device,
            object: "server".into(),
            topic: format!("{}/server", self.cfg.topic_prefix),
        };
        self.add_group(
            d,
            &group,
            vec![
                (
                    ("sensor", "connected_clients"),
                    "Connected clients".into(),
                    Some(s.connected_clients.to_string()),
                    json!({"state_class": "measurement", "icon": "mdi:lan-connect"}),
                ),
                (
                    ("sensor", "connected_clusters"),
                    "Connected clusters".into(),
                    Some(s.connected_clusters.to_string()),
                    json!({"state_class": "measurement", "icon": "mdi:server-network"}),
                ),
                (
                    ("sensor", "tls"),
                    "TLS mode".into(),
                    Some(tls),
                    json!({"device_class": "enum",
                           "options": ["unsupported", "supported", "required", "unknown"],
                           "entity_category": "diagnostic"}),
                ),
                (
                    ("sensor", "version"),
                    "Version".into(),
                    Some(s.version.clone()),
                    json!({"entity_category": "diagnostic", "icon": "mdi:tag"}),
                ),
            ],
        );
    }

    pub(super) fn cluster(&self, d: &mut Desired, cid: &str, c: &KnownCluster) {
        let name = c
            .report
            .as_ref()
            .map_or_else(|| cid.to_string(), |r| display(&r.name));
        let device = json!({
            "identifiers": [format!("{}_cluster_{cid}", self.node)],
            "name": format!("Cluster {name}"),
            "manufacturer": "Corosync",
            "model": "Corosync cluster",
            "via_device": self.server_identifier(),
        });
        let group = Group {
            device: &device,
            object: cid.to_string(),
            topic: format!("{}/{cid}", self.cfg.topic_prefix),
        };
        let holding: Vec<u32> = c
            .nodes
            .iter()
            .filter(|(_, n)| vote_state(connected(c, n)) == "ACK")
            .map(|(id, _)| *id)
            .collect();
        let report = c.report.as_ref();
        let attributes_topic = format!("{}/attributes", group.topic);
        d.states.insert(
            attributes_topic.clone(),
            serde_json::to_vec(&json!({
                "cluster_name": name,
                "algorithm": report.map(|r| r.algorithm),
                "tie_breaker": report.map(|r| r.tie_breaker),
                "kap_tie_breaker": report.map(|r| r.kap_tie_breaker),
                "connected": c.away_since.is_none(),
                "nodes": c.nodes.keys().collect::<Vec<_>>(),
                "nodes_holding_the_vote": holding,
            }))
            .unwrap_or_default(),
        );
        let event_types: Vec<String> = VOTE_STATES.iter().map(|v| v.to_ascii_lowercase()).collect();
        self.add_group(
            d,
            &group,
            vec![
                (
                    HAS_VOTE,
                    "Has voting partition".into(),
                    Some(on_off(!holding.is_empty()).into()),
                    json!({"payload_on": "ON", "payload_off": "OFF",
                           "json_attributes_topic": attributes_topic, "icon": "mdi:vote"}),
                ),
                (
                    VOTES,
                    "Nodes holding the vote".into(),
                    Some(holding.len().to_string()),
                    json!({"state_class": "measurement",
                           "json_attributes_topic": attributes_topic,
                           "icon": "mdi:account-check"}),
                ),
                (
                    VOTE_EVENT,
                    "Vote change".into(),
                    None,
                    json!({"event_types": event_types}),
                ),
            ],
        );
        for (&id, n) in &c.nodes {
            let node_group = Group {
                device: &device,
                object: node_object(cid, id),
                topic: format!("{}/node{id}", group.topic),
            };
            d.votes.insert(
                format!("{}/{}", node_group.topic, NODE_VOTE.1),
                (cid.to_string(), id),
            );
            self.node(d, &node_group, id, connected(c, n));
        }
    }

    fn node(&self, d: &mut Desired, g: &Group<'_>, id: u32, report: Option<&NodeReport>) {
        self.add_group(
            d,
            g,
            vec![
                (
                    NODE_CONNECTED,
                    format!("Node {id} connected"),
                    Some(on_off(report.is_some()).into()),
                    json!({"device_class": "connectivity", "payload_on": "ON", "payload_off": "OFF"}),
                ),
                (
                    NODE_VOTE,
                    format!("Node {id} vote"),
                    Some(vote_state(report).into()),
                    json!({"device_class": "enum", "options": VOTE_STATES, "icon": "mdi:vote"}),
                ),
                (
                    NODE_HEARTBEAT,
                    format!("Node {id} heartbeat interval"),
                    // Not connected: no interval; HA shows "unknown" for "None".
                    Some(report.map_or_else(
                        || "None".into(),
                        |r| r.heartbeat_interval_ms.to_string(),
                    )),
                    json!({"device_class": "duration", "unit_of_measurement": "ms",
                           "state_class": "measurement", "entity_category": "diagnostic"}),
                ),
                (
                    NODE_TLS,
                    format!("Node {id} TLS verified"),
                    Some(on_off(report.is_some_and(|r| r.tls.client_certificate_verified)).into()),
                    json!({"payload_on": "ON", "payload_off": "OFF",
                           "entity_category": "diagnostic", "icon": "mdi:certificate"}),
                ),
            ],
        );
    }
}

impl Discovery {
    /// The builder of this instance's entities.
    pub(super) const fn builder(&self) -> Builder<'_> {
        Builder {
            cfg: &self.cfg,
            node: self.node.as_str(),
        }
    }
}
