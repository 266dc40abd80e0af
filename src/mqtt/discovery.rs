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
mod tests {
    use super::*;
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

    /// Home Assistant's discovery schema per component (from
    /// homeassistant/components/mqtt: schemas.py MQTT_ENTITY_COMMON_SCHEMA
    /// and MQTT_AVAILABILITY_SCHEMA, config.py MQTT_RO_SCHEMA, and
    /// binary_sensor.py, sensor.py, event.py), without abbreviations.
    mod ha_schema {
        use super::*;

        const COMMON: &[&str] = &[
            "availability",
            "availability_mode",
            "availability_template",
            "availability_topic",
            "payload_available",
            "payload_not_available",
            "device",
            "origin",
            "enabled_by_default",
            "entity_category",
            "entity_picture",
            "icon",
            "json_attributes_topic",
            "json_attributes_template",
            "object_id",
            "default_entity_id",
            "unique_id",
            "name",
            "qos",
            "encoding",
            "state_topic",
            "value_template",
            "platform",
        ];
        const BINARY_SENSOR: &[&str] = &[
            "device_class",
            "expire_after",
            "force_update",
            "off_delay",
            "payload_on",
            "payload_off",
        ];
        const SENSOR: &[&str] = &[
            "device_class",
            "state_class",
            "unit_of_measurement",
            "suggested_display_precision",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "options",
        ];
        const EVENT: &[&str] = &["device_class", "event_types"];
        const DEVICE: &[&str] = &[
            "identifiers",
            "connections",
            "manufacturer",
            "model",
            "model_id",
            "name",
            "hw_version",
            "serial_number",
            "sw_version",
            "via_device",
            "suggested_area",
            "configuration_url",
        ];
        const BINARY_SENSOR_CLASSES: &[&str] = &[
            "battery",
            "battery_charging",
            "carbon_monoxide",
            "cold",
            "connectivity",
            "door",
            "garage_door",
            "gas",
            "heat",
            "light",
            "lock",
            "moisture",
            "motion",
            "moving",
            "occupancy",
            "opening",
            "plug",
            "power",
            "presence",
            "problem",
            "running",
            "safety",
            "smoke",
            "sound",
            "tamper",
            "update",
            "vibration",
            "window",
        ];
        const DURATION_UNITS: &[&str] = &["d", "h", "min", "s", "ms", "µs"];

        /// Checks one config; returns its component.
        pub(super) fn check(topic: &str, config: &Value) -> String {
            let parts: Vec<&str> = topic.split('/').collect();
            let [prefix, component, node, object, "config"] = parts[..] else {
                panic!("{topic}: not <prefix>/<component>/<node>/<object>/config")
            };
            assert_eq!(prefix, DEFAULT_DISCOVERY_PREFIX);
            for id in [node, object] {
                assert!(
                    !id.is_empty()
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{topic}: node/object id {id:?}"
                );
            }
            let obj = config
                .as_object()
                .unwrap_or_else(|| panic!("{topic}: not an object"));
            let specific = match component {
                "binary_sensor" => BINARY_SENSOR,
                "sensor" => SENSOR,
                "event" => EVENT,
                other => panic!("{topic}: component {other} not validated"),
            };
            for key in obj.keys() {
                assert!(
                    COMMON.contains(&key.as_str()) || specific.contains(&key.as_str()),
                    "{topic}: key {key} is not in HA's {component} schema"
                );
            }
            let string = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{topic}: {k} must be a string"))
            };
            // Required by HA (state_topic for all three, event_types for
            // event) and by us (unique_id, device, availability).
            let state_topic = string("state_topic");
            assert!(
                !state_topic.contains(['+', '#']),
                "{topic}: wildcard in state_topic"
            );
            assert_eq!(
                string("unique_id"),
                object,
                "{topic}: unique_id = object id"
            );
            assert_eq!(string("default_entity_id"), format!("{component}.{object}"));
            assert!(!string("name").is_empty());
            assert!(!string("availability_topic").contains(['+', '#']));
            assert_eq!(
                (string("payload_available"), string("payload_not_available")),
                ("online", "offline")
            );
            let origin = obj["origin"].as_object().expect("origin object");
            assert!(origin["name"].is_string(), "{topic}: origin needs a name");
            let device = obj["device"].as_object().expect("device object");
            for key in device.keys() {
                assert!(DEVICE.contains(&key.as_str()), "{topic}: device key {key}");
            }
            let ids = device["identifiers"].as_array().expect("identifiers list");
            assert!(
                !ids.is_empty() && ids.iter().all(Value::is_string),
                "{topic}: identifiers"
            );
            if let Some(icon) = obj.get("icon") {
                assert!(
                    icon.as_str().is_some_and(|i| i.starts_with("mdi:")),
                    "{topic}: icon"
                );
            }
            if let Some(cat) = obj.get("entity_category") {
                assert!(
                    matches!(cat.as_str(), Some("config" | "diagnostic")),
                    "{topic}: entity_category"
                );
            }
            match component {
                "binary_sensor" => {
                    if let Some(dc) = obj.get("device_class") {
                        assert!(
                            BINARY_SENSOR_CLASSES.contains(&dc.as_str().unwrap_or("")),
                            "{topic}: {dc}"
                        );
                    }
                }
                "sensor" => match obj.get("device_class").and_then(Value::as_str) {
                    Some("enum") => {
                        let options = obj["options"]
                            .as_array()
                            .expect("enum sensor needs options");
                        assert!(!options.is_empty() && options.iter().all(Value::is_string));
                        assert!(
                            obj.get("state_class").is_none()
                                && obj.get("unit_of_measurement").is_none(),
                            "{topic}: an enum sensor has no state_class or unit"
                        );
                    }
                    Some("duration") => {
                        assert!(
                            DURATION_UNITS.contains(&string("unit_of_measurement")),
                            "{topic}: unit"
                        );
                        assert!(obj.get("options").is_none());
                    }
                    None => assert!(
                        obj.get("options").is_none() && obj.get("unit_of_measurement").is_none()
                    ),
                    Some(other) => panic!("{topic}: device_class {other} not validated"),
                },
                "event" => {
                    let types = obj["event_types"].as_array().expect("event_types required");
                    assert!(!types.is_empty() && types.iter().all(Value::is_string));
                }
                _ => unreachable!(),
            }
            if let Some(sc) = obj.get("state_class") {
                assert!(
                    matches!(
                        sc.as_str(),
                        Some("measurement" | "total" | "total_increasing")
                    ),
                    "{topic}: state_class"
                );
            }
            component.to_string()
        }

        /// Checks the whole retained picture: every config, its device
        /// links, and that each state is one the entity accepts.
        pub(super) fn check_all(broker: &BTreeMap<String, Vec<u8>>) {
            let configs: Vec<(String, Value)> = broker
                .iter()
                .filter(|(t, _)| t.starts_with(&format!("{DEFAULT_DISCOVERY_PREFIX}/")))
                .map(|(t, p)| {
                    (
                        t.clone(),
                        serde_json::from_slice(p).expect("config is JSON"),
                    )
                })
                .collect();
            assert!(!configs.is_empty());
            let mut unique_ids = BTreeSet::new();
            let mut devices = BTreeSet::new();
            for (_, c) in &configs {
                devices.insert(c["device"]["identifiers"][0].as_str().unwrap().to_string());
            }
            for (topic, c) in &configs {
                let component = check(topic, c);
                assert!(
                    unique_ids.insert(c["unique_id"].as_str().unwrap().to_string()),
                    "duplicate unique_id"
                );
                if let Some(via) = c["device"].get("via_device") {
                    assert!(
                        devices.contains(via.as_str().unwrap()),
                        "{topic}: via_device {via} unknown"
                    );
                }
                let state_topic = c["state_topic"].as_str().unwrap();
                if component == "event" {
                    assert!(
                        !broker.contains_key(state_topic),
                        "{topic}: events are not retained"
                    );
                    continue;
                }
                let state = broker
                    .get(state_topic)
                    .map(|s| String::from_utf8(s.clone()).unwrap())
                    .unwrap_or_else(|| panic!("{topic}: no retained state on {state_topic}"));
                match component.as_str() {
                    "binary_sensor" => assert!(
                        state == c["payload_on"].as_str().unwrap()
                            || state == c["payload_off"].as_str().unwrap(),
                        "{topic}: state {state}"
                    ),
                    _ => match c.get("device_class").and_then(Value::as_str) {
                        Some("enum") => assert!(
                            c["options"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|o| o == state.as_str()),
                            "{topic}: {state} not in options"
                        ),
                        Some("duration") | None if c.get("state_class").is_some() => assert!(
                            state == "None" || state.parse::<f64>().is_ok(),
                            "{topic}: {state} is not numeric"
                        ),
                        _ => {}
                    },
                }
                if let Some(attrs) = c.get("json_attributes_topic") {
                    let a: Value =
                        serde_json::from_slice(&broker[attrs.as_str().unwrap()]).unwrap();
                    assert!(a.is_object(), "{topic}: attributes must be a JSON object");
                }
            }
        }
    }

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
        let state =
            |b: &BTreeMap<String, Vec<u8>>, t: &str| String::from_utf8(b[t].clone()).unwrap();
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
        let attrs: Value =
            serde_json::from_slice(&broker[&format!("qnetd/{id}/attributes")]).unwrap();
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
}
