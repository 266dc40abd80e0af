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
//! - Entities published by an earlier run: after each (re)connect the shell
//!   subscribes to [`Discovery::config_filter`] (this instance's config
//!   topics) and hands the retained topics to [`Discovery::learn`]. Every
//!   topic that is exactly one of ours (parsed strictly, rebuilt and
//!   compared; anything else is ignored) names a cluster id and maybe a
//!   node; a cluster or node found there that is not known now is away
//!   since then, and goes like one that disconnected. A node of a known
//!   cluster shows as not connected meanwhile; a cluster whose name is not
//!   known (only its id is in the topic) is not republished, only deleted
//!   at the deadline (configs and states). A cluster that connects before
//!   keeps its entities. At most [`MAX_LEARNED`] clusters and nodes learned
//!   this way are tracked at once.
//!
//! Pure: no I/O; time is an argument.
//!
//! Layout: this file holds the model (what is known, what was published)
//! and the diff; `discovery/entities.rs` builds every entity's config and
//! state, and `discovery/learn.rs` parses the survey's topics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::mgmt::json::{ClusterReport, NodeReport, Report, ServerReport};

/// Default discovery prefix of Home Assistant.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// Default topic prefix of qnetd's own topics.
pub const DEFAULT_TOPIC_PREFIX: &str = "qnetd";
/// Default time before entities of a cluster or node that went away are
/// deleted.
pub const DEFAULT_REMOVE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Longest topic prefix or discovery prefix accepted.
pub const MAX_PREFIX_LEN: usize = 128;
/// Characters of a cluster name kept in its id.
const MAX_ID_SLUG: usize = 32;
/// Clusters and nodes learned from the broker ([`Discovery::learn`]) and
/// not connected, tracked at most at once.
pub const MAX_LEARNED: usize = 1024;

/// An entity kind: component and "what" (the end of its object id and of
/// its state topic).
type Entity = (&'static str, &'static str);
const HAS_VOTE: Entity = ("binary_sensor", "has_vote");
const VOTES: Entity = ("sensor", "votes");
const VOTE_EVENT: Entity = ("event", "vote_event");
/// The entities of a cluster device, beside its nodes'.
const CLUSTER_ENTITIES: [Entity; 3] = [HAS_VOTE, VOTES, VOTE_EVENT];
const NODE_CONNECTED: Entity = ("binary_sensor", "connected");
const NODE_VOTE: Entity = ("sensor", "vote");
const NODE_HEARTBEAT: Entity = ("sensor", "heartbeat_interval");
const NODE_TLS: Entity = ("binary_sensor", "tls_verified");
/// The entities of each node of a cluster.
const NODE_ENTITIES: [Entity; 4] = [NODE_CONNECTED, NODE_VOTE, NODE_HEARTBEAT, NODE_TLS];

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

/// The object id part (after `<node>_`) of node `id` of cluster `cid`.
fn node_object(cid: &str, id: u32) -> String {
    format!("{cid}_node{id}")
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

/// A node as last reported (`None`: only learned from the broker);
/// `away_since` is set by the first report without it.
#[derive(Debug, Clone)]
struct KnownNode {
    report: Option<NodeReport>,
    away_since: Option<Instant>,
}

/// A cluster as last reported (`None`: only its id was learned from the
/// broker), with every node seen since it appeared.
#[derive(Debug, Clone)]
struct KnownCluster {
    report: Option<ClusterReport>,
    away_since: Option<Instant>,
    nodes: BTreeMap<u32, KnownNode>,
}

/// What the entities should look like now: config topic → payload, state
/// topic → payload, and vote topic → (cluster id, node id) for events;
/// and the topics of clusters learned from the broker, kept as they are
/// there (payload unknown) until their deadline.
#[derive(Default)]
struct Desired {
    configs: BTreeMap<String, Vec<u8>>,
    states: BTreeMap<String, Vec<u8>>,
    votes: BTreeMap<String, (String, u32)>,
    kept_configs: BTreeSet<String>,
    kept_states: BTreeSet<String>,
}

/// The discovery model; see the module documentation.
#[derive(Debug)]
pub struct Discovery {
    cfg: DiscoveryConfig,
    node: String,
    server: Option<ServerReport>,
    /// By [`cluster_id`].
    clusters: BTreeMap<String, KnownCluster>,
    /// Published configs and states (topic → payload; empty: learned from
    /// the broker, payload unknown).
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
        let live: BTreeMap<String, &ClusterReport> = report
            .clusters
            .iter()
            .map(|c| (cluster_id(&c.name), c))
            .collect();
        for (cid, c) in &mut self.clusters {
            let now_cluster = live.get(cid);
            if now_cluster.is_none() {
                c.away_since.get_or_insert(now);
            }
            for (id, n) in &mut c.nodes {
                if !now_cluster.is_some_and(|r| r.nodes.iter().any(|rn| rn.node_id == *id)) {
                    n.away_since.get_or_insert(now);
                }
            }
        }
        for (cid, c) in live {
            let known = self.clusters.entry(cid).or_insert_with(|| KnownCluster {
                report: None,
                away_since: None,
                nodes: BTreeMap::new(),
            });
            known.report = Some(c.clone());
            known.away_since = None;
            for n in &c.nodes {
                known.nodes.insert(
                    n.node_id,
                    KnownNode {
                        report: Some(n.clone()),
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
        if self.clusters.remove(&cluster_id(cluster_name)).is_none() {
            return Vec::new();
        }
        self.sync()
    }

    /// [`DiscoveryConfig::remove_after`].
    #[must_use]
    pub const fn remove_after(&self) -> Duration {
        self.cfg.remove_after
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
        // Learned topics are at the broker: deleted when no longer kept.
        for t in &desired.kept_configs {
            self.configs.entry(t.clone()).or_default();
        }
        for t in &desired.kept_states {
            self.states.entry(t.clone()).or_default();
        }
        // Deletions first: a config that is no longer wanted, then its states.
        delete_missing(
            &mut self.configs,
            &desired.configs,
            &desired.kept_configs,
            &mut out,
        );
        delete_missing(
            &mut self.states,
            &desired.states,
            &desired.kept_states,
            &mut out,
        );
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
            // An empty previous state was learned, not published: no event.
            if let (Some(prev), Some((cid, node_id))) = (previous, desired.votes.get(&topic))
                && !prev.is_empty()
            {
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
        let b = self.builder();
        if let Some(server) = &self.server {
            b.server(&mut d, server);
        }
        for (cid, c) in &self.clusters {
            if c.report.is_some() {
                b.cluster(&mut d, cid, c);
            } else {
                // Only the topics: its payloads are never published.
                let mut learned = Desired::default();
                b.cluster(&mut learned, cid, c);
                d.kept_configs.extend(learned.configs.into_keys());
                d.kept_states.extend(learned.states.into_keys());
            }
        }
        d
    }
}

/// Forgets the published topics that are neither desired nor kept any
/// more, and deletes them at the broker (empty retained payload).
fn delete_missing(
    published: &mut BTreeMap<String, Vec<u8>>,
    desired: &BTreeMap<String, Vec<u8>>,
    kept: &BTreeSet<String>,
    out: &mut Vec<Message>,
) {
    published.retain(|topic, _| {
        let keep = desired.contains_key(topic) || kept.contains(topic);
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

mod entities;
mod learn;

pub use learn::Learned;

#[cfg(test)]
mod tests;
