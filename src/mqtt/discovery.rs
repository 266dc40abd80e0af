//! Home Assistant MQTT discovery, derived from the status document
//! ([`Report`], the same model as `qnetd tool --json`; no second status
//! model).
//!
//! Contract:
//! - [`Discovery::update`] takes the current [`Report`] and the time, and
//!   returns the [`Message`]s to publish: discovery configs for entities it
//!   has not announced yet, retained states that changed, non-retained vote
//!   events, and empty retained payloads that delete the configs and states
//!   of entities that are gone. The same report twice gives nothing:
//!   nothing is published per heartbeat.
//! - Entities (names relative to their device, `has_entity_name` style):
//!   - device **qnetd** (the server): sensors *Connected clients*,
//!     *Connected clusters*, *TLS mode* (enum), *Version*;
//!   - one device per cluster, `via_device` the server: binary sensor
//!     *Has voting partition* (some node holds ACK), sensor *Nodes holding
//!     the vote* (count; the node ids, the algorithm and the tie-breaker as
//!     attributes on a `json_attributes_topic`), event *Vote change*
//!     (`event_type` = the new vote in lowercase, attributes `node_id`,
//!     `previous`), and per node: binary sensor *Node N connected*
//!     (connectivity), sensor *Node N vote* (enum `ACK`, `NACK`,
//!     `ASK_LATER`, `WAIT_FOR_REPLY`, `UNKNOWN`, `NONE`), sensor *Node N
//!     heartbeat interval* (ms, diagnostic), binary sensor *Node N TLS
//!     verified* (diagnostic).
//! - The vote of a node is its last vote sent; `NO_CHANGE` keeps the last
//!   ACK/NACK in effect, and a node that is not connected has `NONE`.
//! - Every entity has the availability topic `PREFIX/status`
//!   (`online`/`offline`, the session's last will).
//! - Ids: unique id = object id = `<node>_<cluster>_node<N>_<what>`, with
//!   `<node>` the topic prefix and `<cluster>` the [`cluster_id`] of the
//!   name; `default_entity_id` is `<component>.<object id>` (HA 2025.10
//!   replaced `object_id` with it; older versions ignore the key). The same
//!   name gives the same ids after a restart. Config topics are
//!   `DISCOVERY/<component>/<node>/<object id>/config`, state topics
//!   `PREFIX/<cluster>/...`. Hostile names cannot reach a topic level, a
//!   wildcard or another cluster's ids.
//! - A cluster or node that is no longer in the report shows as not
//!   connected; after [`DiscoveryConfig::remove_after`] away (0 = at once)
//!   its entities are deleted. [`Discovery::poll_timeout`] is the next such
//!   deadline (call [`Discovery::update`] then); [`Discovery::forget`]
//!   deletes a cluster at once (unpair).
//!
//! Pure: no I/O; time is an argument.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mgmt::json::{ClusterReport, NodeReport, Report, ServerReport, VoteName};

use super::session::{OFFLINE, ONLINE};

/// Default discovery prefix of Home Assistant.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// Default topic prefix of qnetd's own topics.
pub const DEFAULT_TOPIC_PREFIX: &str = "qnetd";
/// Default time before entities of a cluster or node that went away are
/// deleted.
pub const DEFAULT_REMOVE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Longest topic prefix or discovery prefix accepted.
pub const MAX_PREFIX_LEN: usize = 128;
/// Characters of a cluster name shown in a device name.
const MAX_DISPLAY_NAME: usize = 64;
/// Characters of a cluster name kept in its id.
const MAX_ID_SLUG: usize = 32;

/// Vote values of the *Node N vote* sensor.
pub const VOTE_STATES: [&str; 6] = [
    "ACK",
    "NACK",
    "ASK_LATER",
    "WAIT_FOR_REPLY",
    "UNKNOWN",
    "NONE",
];

/// Settings of [`Discovery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
    /// Prefix of state topics (`qnetd`); also names this instance.
    pub topic_prefix: String,
    /// Time away before a cluster's or node's entities are deleted.
    pub remove_after: Duration,
}

impl DiscoveryConfig {
    /// Checks both prefixes: 1..=128 bytes, no `+`, `#`, NUL, control
    /// characters, empty levels or leading/trailing `/`.
    ///
    /// # Errors
    /// One line naming the prefix.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("discovery prefix", &self.discovery_prefix),
            ("topic prefix", &self.topic_prefix),
        ] {
            if p.is_empty() || p.len() > MAX_PREFIX_LEN {
                return Err(format!("{name}: must be 1..={MAX_PREFIX_LEN} bytes"));
            }
            if p.contains(['+', '#', '\0']) || p.chars().any(char::is_control) {
                return Err(format!(
                    "{name}: must not contain +, # or control characters"
                ));
            }
            if p.split('/').any(str::is_empty) {
                return Err(format!("{name}: empty topic level"));
            }
        }
        Ok(())
    }

    /// The availability topic, `PREFIX/status`.
    #[must_use]
    pub fn availability_topic(&self) -> String {
        format!("{}/status", self.topic_prefix)
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            discovery_prefix: DEFAULT_DISCOVERY_PREFIX.into(),
            topic_prefix: DEFAULT_TOPIC_PREFIX.into(),
            remove_after: DEFAULT_REMOVE_AFTER,
        }
    }
}

/// One publish for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// Payload; empty with `retain` deletes the retained message.
    pub payload: Vec<u8>,
    /// Retained (configs and states) or not (events).
    pub retain: bool,
}

/// The id of a cluster in topics and entity ids: the name itself when it
/// is 1..=32 of `[a-z0-9]`, otherwise a slug of it (lowercase letters and
/// digits, other runs as `_`, at most 32) and `_` and 8 hex digits of a
/// hash of the raw name. Plain names contain no `_` and hashed ones do, so
/// the two kinds never meet, and `Prod` and `prod` stay apart.
#[must_use]
pub fn cluster_id(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= MAX_ID_SLUG
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return name.to_string();
    }
    let mut slug = String::new();
    for c in name.chars() {
        if slug.len() >= MAX_ID_SLUG {
            break;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
    }
    let slug = slug.trim_end_matches('_');
    // FNV-1a 32: stable across builds (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    if slug.is_empty() {
        format!("c_{h:08x}")
    } else {
        format!("{slug}_{h:08x}")
    }
}

/// Topic-level and object-id safe form of the topic prefix (`/` and any
/// other character outside `[a-z0-9_-]` become `_`).
fn node_id(topic_prefix: &str) -> String {
    topic_prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

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
    (c.away_since.is_none() && n.away_since.is_none()).then_some(&n.report)
}

const fn on_off(b: bool) -> &'static str {
    if b { "ON" } else { "OFF" }
}

/// A node as last reported; `away_since` is set by the first report
/// without it.
#[derive(Debug, Clone)]
struct KnownNode {
    report: NodeReport,
    away_since: Option<Instant>,
}

/// A cluster as last reported, with every node seen since it appeared.
#[derive(Debug, Clone)]
struct KnownCluster {
    report: ClusterReport,
    away_since: Option<Instant>,
    nodes: BTreeMap<u32, KnownNode>,
}

/// What the entities should look like now: config topic → payload, state
/// topic → payload, and vote topic → (cluster id, node id) for events.
#[derive(Default)]
struct Desired {
    configs: BTreeMap<String, Vec<u8>>,
    states: BTreeMap<String, Vec<u8>>,
    votes: BTreeMap<String, (String, u32)>,
}

/// The discovery model; see the module documentation.
#[derive(Debug)]
pub struct Discovery {
    cfg: DiscoveryConfig,
    node: String,
    server: Option<ServerReport>,
    clusters: BTreeMap<String, KnownCluster>,
    /// Published configs and states (topic → payload).
    configs: BTreeMap<String, Vec<u8>>,
    states: BTreeMap<String, Vec<u8>>,
}

impl Discovery {
    /// A model that has published nothing yet.
    #[must_use]
    pub fn new(cfg: DiscoveryConfig) -> Self {
        let node = node_id(&cfg.topic_prefix);
        Self {
            cfg,
            node,
            server: None,
            clusters: BTreeMap::new(),
            configs: BTreeMap::new(),
            states: BTreeMap::new(),
        }
    }

    /// The messages that bring Home Assistant from what was published to
    /// `report` (see the module documentation).
    pub fn update(&mut self, report: &Report, now: Instant) -> Vec<Message> {
        self.server = Some(report.server.clone());
        for (name, c) in &mut self.clusters {
            let now_cluster = report.clusters.iter().find(|r| &r.name == name);
            if now_cluster.is_none() {
                c.away_since.get_or_insert(now);
            }
            for (id, n) in &mut c.nodes {
                if !now_cluster.is_some_and(|r| r.nodes.iter().any(|rn| rn.node_id == *id)) {
                    n.away_since.get_or_insert(now);
                }
            }
        }
        for c in &report.clusters {
            let known = self
                .clusters
                .entry(c.name.clone())
                .or_insert_with(|| KnownCluster {
                    report: c.clone(),
                    away_since: None,
                    nodes: BTreeMap::new(),
                });
            known.report = c.clone();
            known.away_since = None;
            for n in &c.nodes {
                known.nodes.insert(
                    n.node_id,
                    KnownNode {
                        report: n.clone(),
                        away_since: None,
                    },
                );
            }
        }
        let keep = self.cfg.remove_after;
        let away_long = |away: Option<Instant>| {
            away.is_some_and(|since| now.saturating_duration_since(since) >= keep)
        };
        self.clusters.retain(|_, c| !away_long(c.away_since));
        for c in self.clusters.values_mut() {
            c.nodes.retain(|_, n| !away_long(n.away_since));
        }
        self.sync()
    }

    /// Deletes a cluster's entities at once (unpair), even if it is still
    /// connected (it comes back with the next report that has it).
    pub fn forget(&mut self, cluster_name: &str) -> Vec<Message> {
        if self.clusters.remove(cluster_name).is_none() {
            return Vec::new();
        }
        self.sync()
    }

    /// When the next cluster or node away reaches `remove_after`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keep = self.cfg.remove_after;
        self.clusters
            .values()
            .flat_map(|c| {
                let nodes = c.nodes.values().filter_map(|n| n.away_since);
                c.away_since.into_iter().chain(nodes)
            })
            .map(|since| since + keep)
            .min()
    }

    /// Diffs the desired entities against what was published.
    fn sync(&mut self) -> Vec<Message> {
        let desired = self.desired();
        let mut out = Vec::new();
        // Deletions first: a config that is no longer wanted, then its states.
        delete_missing(&mut self.configs, &desired.configs, &mut out);
        delete_missing(&mut self.states, &desired.states, &mut out);
        for (topic, payload) in desired.configs {
            if self.configs.get(&topic) != Some(&payload) {
                self.configs.insert(topic.clone(), payload.clone());
                out.push(retained(topic, payload));
            }
        }
        for (topic, payload) in desired.states {
            let previous = self.states.get(&topic);
            if previous == Some(&payload) {
                continue;
            }
            if let (Some(prev), Some((cid, node_id))) = (previous, desired.votes.get(&topic)) {
                out.push(Message {
                    topic: format!("{}/{cid}/vote_event", self.cfg.topic_prefix),
                    payload: serde_json::to_vec(&json!({
                        "event_type": String::from_utf8_lossy(&payload).to_ascii_lowercase(),
                        "node_id": node_id,
                        "previous": String::from_utf8_lossy(prev),
                    }))
                    .unwrap_or_default(),
                    retain: false,
                });
            }
            self.states.insert(topic.clone(), payload.clone());
            out.push(retained(topic, payload));
        }
        out
    }

    fn desired(&self) -> Desired {
        let mut d = Desired::default();
        let Some(server) = &self.server else {
            return d;
        };
        let b = Builder {
            cfg: &self.cfg,
            node: &self.node,
        };
        b.server(&mut d, server);
        for c in self.clusters.values() {
            b.cluster(&mut d, c);
        }
        d
    }
}

/// Forgets the published topics that are not desired any more, and
/// deletes them at the broker (empty retained payload).
fn delete_missing(
    published: &mut BTreeMap<String, Vec<u8>>,
    desired: &BTreeMap<String, Vec<u8>>,
    out: &mut Vec<Message>,
) {
    published.retain(|topic, _| {
        let keep = desired.contains_key(topic);
        if !keep {
            out.push(retained(topic.clone(), Vec::new()));
        }
        keep
    });
}

fn retained(topic: String, payload: Vec<u8>) -> Message {
    Message {
        topic,
        payload,
        retain: true,
    }
}

/// Entity configs and states for one [`Desired`].
struct Builder<'a> {
    cfg: &'a DiscoveryConfig,
    node: &'a str,
}

/// One entity of a group: component, what (the last part of its object id
/// and state topic), name, retained state (`None` for events), and the
/// component-specific keys.
type Spec = (&'static str, &'static str, String, Option<String>, Value);

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

    /// Adds the configs (and states) of `specs`, all of one device.
    fn add_group(&self, d: &mut Desired, g: &Group<'_>, specs: Vec<Spec>) {
        for (component, what, name, state, extra) in specs {
            let object_id = format!("{}_{}_{what}", self.node, g.object);
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
            let topic = format!(
                "{}/{component}/{}/{object_id}/config",
                self.cfg.discovery_prefix, self.node
            );
            d.configs
                .insert(topic, serde_json::to_vec(&config).unwrap_or_default());
            if let Some(s) = state {
                d.states.insert(state_topic, s.into_bytes());
            }
        }
    }

    fn server(&self, d: &mut Desired, s: &ServerReport) {
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
                    "sensor",
                    "connected_clients",
                    "Connected clients".into(),
                    Some(s.connected_clients.to_string()),
                    json!({"state_class": "measurement", "icon": "mdi:lan-connect"}),
                ),
                (
                    "sensor",
                    "connected_clusters",
                    "Connected clusters".into(),
                    Some(s.connected_clusters.to_string()),
                    json!({"state_class": "measurement", "icon": "mdi:server-network"}),
                ),
                (
                    "sensor",
                    "tls",
                    "TLS mode".into(),
                    Some(tls),
                    json!({"device_class": "enum",
                           "options": ["unsupported", "supported", "required", "unknown"],
                           "entity_category": "diagnostic"}),
                ),
                (
                    "sensor",
                    "version",
                    "Version".into(),
                    Some(s.version.clone()),
                    json!({"entity_category": "diagnostic", "icon": "mdi:tag"}),
                ),
            ],
        );
    }

    fn cluster(&self, d: &mut Desired, c: &KnownCluster) {
        let cid = cluster_id(&c.report.name);
        let device = json!({
            "identifiers": [format!("{}_cluster_{cid}", self.node)],
            "name": format!("Cluster {}", display(&c.report.name)),
            "manufacturer": "Corosync",
            "model": "Corosync cluster",
            "via_device": self.server_identifier(),
        });
        let group = Group {
            device: &device,
            object: cid.clone(),
            topic: format!("{}/{cid}", self.cfg.topic_prefix),
        };
        let holding: Vec<u32> = c
            .nodes
            .values()
            .filter(|n| vote_state(connected(c, n)) == "ACK")
            .map(|n| n.report.node_id)
            .collect();
        let attributes_topic = format!("{}/attributes", group.topic);
        d.states.insert(
            attributes_topic.clone(),
            serde_json::to_vec(&json!({
                "cluster_name": display(&c.report.name),
                "algorithm": c.report.algorithm,
                "tie_breaker": c.report.tie_breaker,
                "kap_tie_breaker": c.report.kap_tie_breaker,
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
                    "binary_sensor",
                    "has_vote",
                    "Has voting partition".into(),
                    Some(on_off(!holding.is_empty()).into()),
                    json!({"payload_on": "ON", "payload_off": "OFF",
                           "json_attributes_topic": attributes_topic, "icon": "mdi:vote"}),
                ),
                (
                    "sensor",
                    "votes",
                    "Nodes holding the vote".into(),
                    Some(holding.len().to_string()),
                    json!({"state_class": "measurement",
                           "json_attributes_topic": attributes_topic,
                           "icon": "mdi:account-check"}),
                ),
                (
                    "event",
                    "vote_event",
                    "Vote change".into(),
                    None,
                    json!({"event_types": event_types}),
                ),
            ],
        );
        for n in c.nodes.values() {
            let id = n.report.node_id;
            let node_group = Group {
                device: &device,
                object: format!("{cid}_node{id}"),
                topic: format!("{}/node{id}", group.topic),
            };
            d.votes
                .insert(format!("{}/vote", node_group.topic), (cid.clone(), id));
            self.node(d, &node_group, id, connected(c, n));
        }
    }

    fn node(&self, d: &mut Desired, g: &Group<'_>, id: u32, report: Option<&NodeReport>) {
        self.add_group(
            d,
            g,
            vec![
                (
                    "binary_sensor",
                    "connected",
                    format!("Node {id} connected"),
                    Some(on_off(report.is_some()).into()),
                    json!({"device_class": "connectivity", "payload_on": "ON", "payload_off": "OFF"}),
                ),
                (
                    "sensor",
                    "vote",
                    format!("Node {id} vote"),
                    Some(vote_state(report).into()),
                    json!({"device_class": "enum", "options": VOTE_STATES, "icon": "mdi:vote"}),
                ),
                (
                    "sensor",
                    "heartbeat_interval",
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
                    "binary_sensor",
                    "tls_verified",
                    format!("Node {id} TLS verified"),
                    Some(on_off(report.is_some_and(|r| r.tls.client_certificate_verified)).into()),
                    json!({"payload_on": "ON", "payload_off": "OFF",
                           "entity_category": "diagnostic", "icon": "mdi:certificate"}),
                ),
            ],
        );
    }
}

#[cfg(test)]
mod tests;
