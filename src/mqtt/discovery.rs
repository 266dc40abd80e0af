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

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
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

/// Whether `id` is something [`cluster_id`] can return: 1..=32 of
/// `[a-z0-9]`, or a slug (runs of `[a-z0-9]` joined by single `_`, at most
/// 32) and `_` and 8 lowercase hex digits.
fn is_cluster_id(id: &str) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_ID_SLUG
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if plain(id) {
        return true;
    }
    let Some((slug, hash)) = id.rsplit_once('_') else {
        return false;
    };
    hash.len() == 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && slug.len() <= MAX_ID_SLUG
        && slug.split('_').all(plain)
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

/// What [`Discovery::learn`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// To publish: the entities of learned nodes of known clusters.
    pub messages: Vec<Message>,
    /// Clusters and nodes newly tracked as away.
    pub away: usize,
    /// Of ours, but not tracked: [`MAX_LEARNED`] reached.
    pub over_cap: usize,
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

    /// The topic filter of this instance's discovery configs,
    /// `DISCOVERY/+/<node>/+/config`, for the survey after a (re)connect.
    #[must_use]
    pub fn config_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.cfg.discovery_prefix, self.node)
    }

    /// Retained config topics found at the broker (see the module
    /// documentation): clusters and nodes not known now are away since
    /// `now`. Topics that are not exactly ours, and server entities, are
    /// ignored.
    pub fn learn(&mut self, topics: &[String], now: Instant) -> Learned {
        let mut tracked = self
            .clusters
            .values()
            .map(|c| {
                usize::from(c.report.is_none())
                    + c.nodes.values().filter(|n| n.report.is_none()).count()
            })
            .sum::<usize>();
        let (mut away, mut over_cap) = (0, 0);
        for topic in topics {
            let Some((cid, node)) = self.parse_config_topic(topic) else {
                continue;
            };
            let cluster = match self.clusters.entry(cid) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(_) if tracked >= MAX_LEARNED => {
                    over_cap += 1;
                    continue;
                }
                Entry::Vacant(e) => {
                    tracked += 1;
                    away += 1;
                    e.insert(KnownCluster {
                        report: None,
                        away_since: Some(now),
                        nodes: BTreeMap::new(),
                    })
                }
            };
            let Some(id) = node else { continue };
            match cluster.nodes.entry(id) {
                Entry::Occupied(_) => {}
                Entry::Vacant(_) if tracked >= MAX_LEARNED => over_cap += 1,
                Entry::Vacant(e) => {
                    tracked += 1;
                    away += 1;
                    e.insert(KnownNode {
                        report: None,
                        away_since: Some(now),
                    });
                }
            }
        }
        Learned {
            messages: self.sync(),
            away,
            over_cap,
        }
    }

    /// The cluster id and node of one of our cluster or node config topics,
    /// `DISCOVERY/<component>/<node>/<node>_<cid>[_node<N>]_<what>/config`:
    /// the parts are taken apart, checked, and the topic rebuilt from them
    /// must be `topic` byte for byte.
    fn parse_config_topic(&self, topic: &str) -> Option<(String, Option<u32>)> {
        let rest = topic
            .strip_prefix(self.cfg.discovery_prefix.as_str())?
            .strip_prefix('/')?;
        let (component, rest) = rest.split_once('/')?;
        let object = rest
            .strip_prefix(self.node.as_str())?
            .strip_prefix('/')?
            .strip_suffix("/config")?
            .strip_prefix(self.node.as_str())?
            .strip_prefix('_')?;
        let kind = |entities: &'static [Entity]| {
            entities
                .iter()
                .filter(move |(c, _)| *c == component)
                .filter_map(|(_, what)| {
                    Some((object.strip_suffix(what)?.strip_suffix('_')?, *what))
                })
        };
        let (cid, node, what) = kind(&NODE_ENTITIES)
            .find_map(|(head, what)| {
                let (cid, id) = head.rsplit_once("_node")?;
                Some((cid, Some(id.parse::<u32>().ok()?), what))
            })
            .or_else(|| {
                kind(&CLUSTER_ENTITIES)
                    .map(|(cid, what)| (cid, None, what))
                    .next()
            })?;
        let group = node.map_or_else(|| cid.to_string(), |id| node_object(cid, id));
        let b = self.builder();
        (is_cluster_id(cid) && b.config_topic(component, &b.object_id(&group, what)) == topic)
            .then(|| (cid.to_string(), node))
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

    const fn builder(&self) -> Builder<'_> {
        Builder {
            cfg: &self.cfg,
            node: self.node.as_str(),
        }
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

/// Entity configs and states for one [`Desired`].
struct Builder<'a> {
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
    fn object_id(&self, group_object: &str, what: &str) -> String {
        format!("{}_{group_object}_{what}", self.node)
    }

    /// The discovery config topic of an entity.
    fn config_topic(&self, component: &str, object_id: &str) -> String {
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

    fn cluster(&self, d: &mut Desired, cid: &str, c: &KnownCluster) {
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

#[cfg(test)]
mod tests;
