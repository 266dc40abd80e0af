//! The machine-readable status document (our extension; the `json` request
//! and `qnetd tool --json`).
//!
//! One JSON object with everything `status verbose` and `list verbose`
//! show, plus what the text leaves out (quorum lists, node states, data
//! center ids, the quorate flag). Names are stable `snake_case`; enum values
//! are lowercase words. Schema (version 1), with example values:
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "server": {
//!     "version": "0.1.0",                 // qnetd package version
//!     "address": "127.0.0.1",             // -l as given, or "*" (wildcard)
//!     "port": 5403,
//!     "tls": "unsupported",               // "unsupported" | "supported" | "required"  (-s off/on/req)
//!     "client_cert_required": true,       // -c as configured (relevant only when tls is not "unsupported")
//!     "max_clients": null,                // -m, null = unlimited
//!     "max_send_size": 32768,             // bytes
//!     "max_receive_size": 32768,          // bytes
//!     "connected_clients": 3,             // TCP connections, initialised or not
//!     "connected_clusters": 2
//!   },
//!   "clusters": [                         // creation order
//!     {
//!       "name": "testcluster",
//!       "algorithm": "ffsplit",           // of the first node: "test" | "ffsplit" | "2nodelms" | "lms"
//!       "kap_tie_breaker": true,          // every node ffsplit with keep_active_partition_tie_breaker
//!       "tie_breaker": { "mode": "lowest", "node_id": null },  // "lowest" | "highest" | "node_id" (+ its id)
//!       "nodes": [                        // node-id order
//!         {
//!           "node_id": 1,
//!           "address": "127.0.0.1:55098", // as in the text report (IPv6 without brackets)
//!           "tls": { "active": false, "client_certificate_verified": false },
//!           "heartbeat_interval_ms": 8000,
//!           "ring_id": { "node_id": 1, "seq": 8 },
//!           "config_version": 5,          // null when the node never sent one
//!           "config_node_list": [ { "node_id": 1, "data_center_id": 0, "node_state": "not_set" } ],
//!           "membership_node_list": [],   // same entries; node_state: "not_set" | "member" | "dead" | "leaving"
//!           "quorum_node_list": [],
//!           "quorate": null,              // true | false | null (no quorum list yet)
//!           "heuristics": { "current": "undefined", "membership": "undefined", "regular": "pass" },
//!           "keep_active_partition_tie_breaker": true,
//!           "last_vote": "ack",           // null | "ack" | "nack" | "ask_later" | "wait_for_reply" | "no_change"
//!           "last_ack_nack_vote": "ack"   // null | "ack" | "nack"
//!         }
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! The `//` comments are documentation only. A value the wire could carry
//! but this server never stores shows as `"unknown"`. `data_center_id` 0
//! means "not set". Additions keep `schema_version`; a change of meaning or
//! a removal bumps it.

use serde::{Deserialize, Serialize};

use super::report::kap_tie_breaker_active;
use super::{ServerView, cluster_matches};
use crate::algo::{Cluster, Member};
use crate::proto::{
    DecisionAlgorithm, Heuristics, NodeInfo, NodeState, Quorate, TieBreakerMode, TlsSupported, Vote,
};

/// The version of this document's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The server and its settings.
    pub server: ServerReport,
    /// The clusters, in creation order (filtered by name if asked).
    pub clusters: Vec<ClusterReport>,
}

/// TLS mode of the server (`-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// `-s off`.
    Unsupported,
    /// `-s on`.
    Supported,
    /// `-s req`.
    Required,
    /// Anything else (never configured by this server).
    Unknown,
}

/// The server section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerReport {
    /// Version of this qnetd.
    pub version: String,
    /// Listen address as given with `-l`, or `*` for the wildcard.
    pub address: String,
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// Whether TLS clients must present a certificate (`-c`).
    pub client_cert_required: bool,
    /// Maximum number of clients (`-m`); `None` = unlimited.
    pub max_clients: Option<u64>,
    /// Largest message sent to a client, bytes.
    pub max_send_size: u64,
    /// Largest message accepted from a client, bytes.
    pub max_receive_size: u64,
    /// TCP connections, initialised or not.
    pub connected_clients: u64,
    /// Clusters with at least one node.
    pub connected_clusters: u64,
}

/// A decision algorithm, by its corosync.conf name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlgorithmName {
    /// `test`.
    #[serde(rename = "test")]
    Test,
    /// `ffsplit`.
    #[serde(rename = "ffsplit")]
    Ffsplit,
    /// `2nodelms`.
    #[serde(rename = "2nodelms")]
    TwoNodeLms,
    /// `lms`.
    #[serde(rename = "lms")]
    Lms,
    /// Not an algorithm this server runs.
    #[serde(rename = "unknown")]
    Unknown,
}

/// Tie-breaker mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreakerModeName {
    /// Node with the lowest node id.
    Lowest,
    /// Node with the highest node id.
    Highest,
    /// A given node ([`TieBreakerReport::node_id`]).
    NodeId,
    /// Not a mode the wire allows.
    Unknown,
}

/// A cluster's tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TieBreakerReport {
    /// The mode.
    pub mode: TieBreakerModeName,
    /// The node, for mode `node_id` only.
    pub node_id: Option<u32>,
}

/// One cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Cluster name (lossy UTF-8).
    pub name: String,
    /// Algorithm of the first node (all nodes agree; INIT enforces it).
    pub algorithm: AlgorithmName,
    /// Whether every node runs ffsplit with the keep-active-partition
    /// tie-breaker (the text report's "(KAP Tie-breaker)").
    pub kap_tie_breaker: bool,
    /// Tie-breaker of the first node (all nodes agree).
    pub tie_breaker: TieBreakerReport,
    /// The nodes, in node-id order.
    pub nodes: Vec<NodeReport>,
}

/// TLS state of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsState {
    /// STARTTLS done.
    pub active: bool,
    /// The client certificate was checked against the cluster name.
    pub client_certificate_verified: bool,
}

/// A totem ring id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingIdReport {
    /// Node id of the ring's representative.
    pub node_id: u32,
    /// Ring sequence number.
    pub seq: u64,
}

/// Node state in a node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStateName {
    /// Not sent.
    NotSet,
    /// Member.
    Member,
    /// Dead.
    Dead,
    /// Leaving.
    Leaving,
    /// Not a state the wire allows.
    Unknown,
}

/// One entry of a node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node id.
    pub node_id: u32,
    /// Data center id, 0 when not set.
    pub data_center_id: u32,
    /// Node state.
    pub node_state: NodeStateName,
}

/// A heuristics result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeuristicsName {
    /// Not run or not reported.
    Undefined,
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Not a value the wire allows.
    Unknown,
}

/// The three heuristics results the server keeps per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeuristicsReport {
    /// The latest of the two below (what the algorithms use).
    pub current: HeuristicsName,
    /// From the last membership node list.
    pub membership: HeuristicsName,
    /// From the last HEURISTICS_CHANGE.
    pub regular: HeuristicsName,
}

/// A vote the server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteName {
    /// ACK.
    Ack,
    /// NACK.
    Nack,
    /// Ask later.
    AskLater,
    /// Wait for reply.
    WaitForReply,
    /// No change.
    NoChange,
    /// Not a vote the server sends.
    Unknown,
}

/// One node (client connection) of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node id.
    pub node_id: u32,
    /// Peer address, `a.b.c.d:port` or `<ipv6>:port`.
    pub address: String,
    /// TLS state.
    pub tls: TlsState,
    /// Heartbeat interval in ms.
    pub heartbeat_interval_ms: u32,
    /// Ring id (from INIT, then from every membership list).
    pub ring_id: RingIdReport,
    /// Config version of the last configuration list, if it had one.
    pub config_version: Option<u64>,
    /// Last configuration node list.
    pub config_node_list: Vec<NodeEntry>,
    /// Last membership node list.
    pub membership_node_list: Vec<NodeEntry>,
    /// Last quorum node list.
    pub quorum_node_list: Vec<NodeEntry>,
    /// Quorate flag of the last quorum list; `None` before the first.
    pub quorate: Option<bool>,
    /// Heuristics results.
    pub heuristics: HeuristicsReport,
    /// Keep-active-partition tie-breaker of this node (ffsplit).
    pub keep_active_partition_tie_breaker: bool,
    /// Last vote sent (in any reply or VOTE_INFO); `None` if none yet.
    pub last_vote: Option<VoteName>,
    /// Last ACK or NACK sent; `None` if none yet.
    pub last_ack_nack_vote: Option<VoteName>,
}

const fn tls_mode(tls: TlsSupported) -> TlsMode {
    match tls {
        TlsSupported::Unsupported => TlsMode::Unsupported,
        TlsSupported::Supported => TlsMode::Supported,
        TlsSupported::Required => TlsMode::Required,
        TlsSupported::Unknown(_) => TlsMode::Unknown,
    }
}

const fn algorithm_name(a: DecisionAlgorithm) -> AlgorithmName {
    match a {
        DecisionAlgorithm::Test => AlgorithmName::Test,
        DecisionAlgorithm::Ffsplit => AlgorithmName::Ffsplit,
        DecisionAlgorithm::TwoNodeLms => AlgorithmName::TwoNodeLms,
        DecisionAlgorithm::Lms => AlgorithmName::Lms,
        DecisionAlgorithm::Unknown(_) => AlgorithmName::Unknown,
    }
}

const fn heuristics_name(h: Heuristics) -> HeuristicsName {
    match h {
        Heuristics::Undefined => HeuristicsName::Undefined,
        Heuristics::Pass => HeuristicsName::Pass,
        Heuristics::Fail => HeuristicsName::Fail,
        Heuristics::Unknown(_) => HeuristicsName::Unknown,
    }
}

const fn vote_name(v: Vote) -> Option<VoteName> {
    match v {
        Vote::Undefined => None,
        Vote::Ack => Some(VoteName::Ack),
        Vote::Nack => Some(VoteName::Nack),
        Vote::AskLater => Some(VoteName::AskLater),
        Vote::WaitForReply => Some(VoteName::WaitForReply),
        Vote::NoChange => Some(VoteName::NoChange),
        Vote::Unknown(_) => Some(VoteName::Unknown),
    }
}

const fn node_state_name(s: NodeState) -> NodeStateName {
    match s {
        NodeState::NotSet => NodeStateName::NotSet,
        NodeState::Member => NodeStateName::Member,
        NodeState::Dead => NodeStateName::Dead,
        NodeState::Leaving => NodeStateName::Leaving,
        NodeState::Unknown(_) => NodeStateName::Unknown,
    }
}

fn entries(list: &[NodeInfo]) -> Vec<NodeEntry> {
    list.iter()
        .map(|n| NodeEntry {
            node_id: n.node_id,
            data_center_id: n.data_center_id,
            node_state: node_state_name(n.node_state),
        })
        .collect()
}

fn tie_breaker(m: &Member) -> TieBreakerReport {
    let (mode, node_id) = match m.tie_breaker.mode {
        TieBreakerMode::Lowest => (TieBreakerModeName::Lowest, None),
        TieBreakerMode::Highest => (TieBreakerModeName::Highest, None),
        TieBreakerMode::NodeId => (TieBreakerModeName::NodeId, Some(m.tie_breaker.node_id)),
        TieBreakerMode::Unknown(_) => (TieBreakerModeName::Unknown, None),
    };
    TieBreakerReport { mode, node_id }
}

fn node(view: &ServerView<'_>, m: &Member) -> NodeReport {
    let info = view.instance.client_info(m.client);
    NodeReport {
        node_id: m.node_id,
        address: info.map(|i| i.addr.to_string()).unwrap_or_default(),
        tls: TlsState {
            active: info.is_some_and(|i| i.tls_started),
            client_certificate_verified: info.is_some_and(|i| i.tls_started && i.tls_peer_verified),
        },
        heartbeat_interval_ms: info.map_or(0, |i| i.heartbeat_interval),
        ring_id: RingIdReport {
            node_id: m.ring_id.node_id,
            seq: m.ring_id.seq,
        },
        config_version: m.config_version,
        config_node_list: entries(&m.config_list),
        membership_node_list: entries(&m.membership_list),
        quorum_node_list: entries(&m.quorum_list),
        quorate: m.quorate.map(|q| q == Quorate::Quorate),
        heuristics: HeuristicsReport {
            current: heuristics_name(m.heuristics),
            membership: heuristics_name(m.membership_heuristics),
            regular: heuristics_name(m.regular_heuristics),
        },
        keep_active_partition_tie_breaker: m.keep_active_partition_tie_breaker,
        last_vote: vote_name(m.last_sent_vote),
        last_ack_nack_vote: vote_name(m.last_sent_ack_nack_vote),
    }
}

fn cluster(view: &ServerView<'_>, c: &Cluster) -> ClusterReport {
    let first = c.members.first();
    ClusterReport {
        name: c.display_name().to_string(),
        algorithm: first.map_or(AlgorithmName::Unknown, |m| algorithm_name(m.algorithm)),
        kap_tie_breaker: !c.members.is_empty() && kap_tie_breaker_active(c),
        tie_breaker: first.map_or(
            TieBreakerReport {
                mode: TieBreakerModeName::Unknown,
                node_id: None,
            },
            tie_breaker,
        ),
        nodes: c.members.iter().map(|m| node(view, m)).collect(),
    }
}

impl Report {
    /// Builds the document; `filter` selects clusters as `list cluster NAME`
    /// does (see [`cluster_matches`]).
    #[must_use]
    pub fn new(view: &ServerView<'_>, filter: Option<&[u8]>) -> Self {
        let cfg = view.instance.config();
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Self {
            schema_version: SCHEMA_VERSION,
            server: ServerReport {
                version: env!("CARGO_PKG_VERSION").to_string(),
                address: view.listen_addr.unwrap_or("*").to_string(),
                port: view.port,
                tls: tls_mode(cfg.tls),
                client_cert_required: cfg.client_cert_required,
                max_clients: (cfg.max_clients != 0).then(|| as_u64(cfg.max_clients)),
                max_send_size: as_u64(cfg.max_client_send_size),
                max_receive_size: as_u64(cfg.max_client_receive_size),
                connected_clients: as_u64(view.instance.client_count()),
                connected_clusters: as_u64(view.instance.cluster_count()),
            },
            clusters: view
                .instance
                .clusters()
                .into_iter()
                .filter(|c| cluster_matches(filter, &c.name))
                .map(|c| cluster(view, c))
                .collect(),
        }
    }
}

/// The document as pretty-printed JSON ending in a newline.
#[must_use]
pub fn render(view: &ServerView<'_>, filter: Option<&[u8]>) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&Report::new(view, filter)).unwrap_or_default();
    out.push(b'\n');
    out
}
