//! What [`Discovery::learn`] takes from the survey after a (re)connect:
//! the retained config topics an earlier run left at the broker.
//!
//! Contract: a topic counts only if it is exactly one of this instance's
//! cluster or node config topics (parsed strictly, the cluster id checked
//! against what [`cluster_id`] can return, the topic rebuilt from the parts
//! and compared byte for byte); anything else, the server's own entities
//! included, is ignored. What is learned is tracked as away since the
//! survey, at most [`MAX_LEARNED`] clusters and nodes at once.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::Instant;

#[cfg(doc)]
use super::cluster_id;
use super::{
    CLUSTER_ENTITIES, Discovery, Entity, KnownCluster, KnownNode, MAX_ID_SLUG, MAX_LEARNED,
    Message, NODE_ENTITIES, node_object,
};

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

impl Discovery {
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
    pub(super) fn parse_config_topic(&self, topic: &str) -> Option<(String, Option<u32>)> {
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
}
