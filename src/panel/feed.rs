//! What the page shows live: the `--json` [`Report`] plus the facts it
//! does not carry (uptime, when each node connected, recent events),
//! framed as one JSON snapshot for `/api/status`-style polling and as
//! server-sent events.
//!
//! [`Feed::update`] takes a fresh Report and the time; it diffs it with the
//! previous one to log connects, disconnects and vote changes (the last
//! [`MAX_EVENTS`]) and to remember when a node (cluster name + address)
//! was first seen. Times are ms of the shell's monotonic clock (server
//! uptime). Snapshot layout:
//!
//! ```json
//! { "uptime_ms": 5000, "connected_since_ms": { "cluster/127.0.0.1:4242": 1200 },
//!   "events": [ { "at_ms": 1200, "kind": "connect", "cluster": "c", "node_id": 1, "detail": "127.0.0.1:4242" } ],
//!   "report": { …the --json Report… } }
//! ```

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::mgmt::json::{Report, VoteName};

/// Events kept for the page.
pub const MAX_EVENTS: usize = 30;
/// An SSE comment that keeps proxies from timing the stream out.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// When (server uptime, ms).
    pub at_ms: u64,
    /// `connect`, `disconnect` or `vote`.
    pub kind: &'static str,
    /// Cluster name.
    pub cluster: String,
    /// Node id.
    pub node_id: u32,
    /// Address, or the new vote.
    pub detail: String,
}

/// The panel's state between snapshots.
#[derive(Debug, Default)]
pub struct Feed {
    last: Option<Report>,
    since: BTreeMap<String, u64>,
    events: VecDeque<Entry>,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    uptime_ms: u64,
    connected_since_ms: &'a BTreeMap<String, u64>,
    events: &'a VecDeque<Entry>,
    report: Option<&'a Report>,
}

fn vote_word(v: Option<VoteName>) -> &'static str {
    match v {
        None => "none",
        Some(VoteName::Ack) => "ack",
        Some(VoteName::Nack) => "nack",
        Some(VoteName::AskLater) => "ask_later",
        Some(VoteName::WaitForReply) => "wait_for_reply",
        Some(VoteName::NoChange) => "no_change",
        Some(VoteName::Unknown) => "unknown",
    }
}

/// Every node of a report: key (cluster/address), cluster, node id, vote.
fn nodes(r: &Report) -> BTreeMap<String, (&str, u32, Option<VoteName>)> {
    r.clusters
        .iter()
        .flat_map(|c| {
            c.nodes.iter().map(move |n| {
                (
                    format!("{}/{}", c.name, n.address),
                    (c.name.as_str(), n.node_id, n.last_ack_nack_vote),
                )
            })
        })
        .collect()
}

impl Feed {
    /// Takes the current report; returns whether anything changed since
    /// the previous one.
    pub fn update(&mut self, now_ms: u64, report: Report) -> bool {
        if self.last.as_ref() == Some(&report) {
            return false;
        }
        let empty = Report {
            clusters: Vec::new(),
            ..report.clone()
        };
        let old = nodes(self.last.as_ref().unwrap_or(&empty));
        let new = nodes(&report);
        let mut log = Vec::new();
        for (key, (cluster, id, vote)) in &new {
            let address = key.rsplit_once('/').map_or("", |(_, a)| a);
            match old.get(key) {
                None => {
                    self.since.insert(key.clone(), now_ms);
                    log.push(("connect", cluster, *id, address.to_string()));
                }
                Some((_, _, before)) if before != vote => {
                    log.push(("vote", cluster, *id, vote_word(*vote).to_string()));
                }
                Some(_) => {}
            }
        }
        for (key, (cluster, id, _)) in &old {
            if !new.contains_key(key) {
                self.since.remove(key);
                let address = key.rsplit_once('/').map_or("", |(_, a)| a);
                log.push(("disconnect", cluster, *id, address.to_string()));
            }
        }
        for (kind, cluster, node_id, detail) in log {
            if self.events.len() == MAX_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(Entry {
                at_ms: now_ms,
                kind,
                cluster: cluster.to_string(),
                node_id,
                detail,
            });
        }
        self.last = Some(report);
        true
    }

    /// The events so far, oldest first.
    #[must_use]
    pub fn events(&self) -> &VecDeque<Entry> {
        &self.events
    }

    /// The snapshot as one line of JSON.
    #[must_use]
    pub fn snapshot(&self, now_ms: u64) -> Vec<u8> {
        serde_json::to_vec(&Snapshot {
            uptime_ms: now_ms,
            connected_since_ms: &self.since,
            events: &self.events,
            report: self.last.as_ref(),
        })
        .unwrap_or_default()
    }

    /// The snapshot as a server-sent `status` event.
    #[must_use]
    pub fn frame(&self, now_ms: u64) -> Vec<u8> {
        let mut out = b"event: status\ndata: ".to_vec();
        out.extend_from_slice(&self.snapshot(now_ms));
        out.extend_from_slice(b"\n\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mgmt::json::*;

    fn node(id: u32, addr: &str, vote: Option<VoteName>) -> NodeReport {
        NodeReport {
            node_id: id,
            address: addr.into(),
            tls: TlsState {
                active: false,
                client_certificate_verified: false,
            },
            heartbeat_interval_ms: 8000,
            ring_id: RingIdReport { node_id: 1, seq: 1 },
            config_version: None,
            config_node_list: vec![],
            membership_node_list: vec![],
            quorum_node_list: vec![],
            quorate: None,
            heuristics: HeuristicsReport {
                current: HeuristicsName::Undefined,
                membership: HeuristicsName::Undefined,
                regular: HeuristicsName::Undefined,
            },
            keep_active_partition_tie_breaker: false,
            last_vote: vote,
            last_ack_nack_vote: vote,
        }
    }

    fn report(nodes: Vec<NodeReport>) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            server: ServerReport {
                version: "0".into(),
                address: "*".into(),
                port: 5403,
                tls: TlsMode::Unsupported,
                client_cert_required: false,
                max_clients: None,
                max_send_size: 1,
                max_receive_size: 1,
                connected_clients: 0,
                connected_clusters: 0,
            },
            clusters: vec![ClusterReport {
                name: "c".into(),
                algorithm: AlgorithmName::Ffsplit,
                kap_tie_breaker: false,
                tie_breaker: TieBreakerReport {
                    mode: TieBreakerModeName::Lowest,
                    node_id: None,
                },
                nodes,
            }],
        }
    }

    #[test]
    fn logs_connects_votes_and_disconnects() {
        let mut f = Feed::default();
        assert!(f.update(10, report(vec![node(1, "a:1", None)])));
        assert!(!f.update(20, report(vec![node(1, "a:1", None)])));
        assert!(f.update(30, report(vec![node(1, "a:1", Some(VoteName::Ack))])));
        assert!(f.update(40, report(vec![])));
        let kinds: Vec<_> = f
            .events()
            .iter()
            .map(|e| (e.at_ms, e.kind, e.detail.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (10, "connect", "a:1"),
                (30, "vote", "ack"),
                (40, "disconnect", "a:1")
            ]
        );
        let frame = String::from_utf8(f.frame(50)).unwrap();
        assert!(frame.starts_with("event: status\ndata: {\"uptime_ms\":50,"));
        assert!(frame.ends_with("}\n\n") && frame.matches('\n').count() == 3);
    }

    #[test]
    fn keeps_the_last_events_only() {
        let mut f = Feed::default();
        for i in 0..u32::try_from(MAX_EVENTS).unwrap() + 5 {
            f.update(u64::from(i), report(vec![node(i, &format!("a:{i}"), None)]));
        }
        assert_eq!(f.events().len(), MAX_EVENTS);
    }
}
