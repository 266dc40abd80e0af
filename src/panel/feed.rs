//! What the page shows live: the `--json` [`Report`] plus the facts it
//! does not carry (uptime, when each node connected, recent events),
//! framed as one JSON snapshot for `/api/status`-style polling and as
//! server-sent events.
//!
//! [`Feed::update`] takes a fresh Report and the time; it diffs it with the
//! previous one to log connects, disconnects and vote changes and to
//! remember when a node (cluster name + address) was first seen.
//! [`Feed::note`] logs the steps the Report cannot show: pairing (the
//! daemon's pairing state hands them over as they happen). One list keeps
//! the last [`MAX_EVENTS`] of both. [`Feed::set_paired`] takes the paired
//! clusters from the same hand-over. Times are ms of the shell's monotonic
//! clock (server uptime). Snapshot layout:
//!
//! ```json
//! { "uptime_ms": 5000, "connected_since_ms": { "cluster/127.0.0.1:4242": 1200 },
//!   "paired": [ "c", "lab" ],
//!   "events": [ { "at_ms": 1200, "kind": "connect", "cluster": "c", "node_id": 1, "detail": "127.0.0.1:4242" } ],
//!   "report": { …the --json Report… } }
//! ```
//!
//! `paired` lists, sorted, the clusters with live certificates in the
//! certificate store's index, connected or not (the ones the page offers
//! to unpair); it is `null` when the daemon has no pairing (TLS off).
//!
//! Every event has `at_ms` and `kind`; the other fields depend on the kind
//! ([`Event`]):
//!
//! | kind | fields |
//! |---|---|
//! | `connect`, `disconnect` | `cluster`, `node_id`, `detail` (the address) |
//! | `vote` | `cluster`, `node_id`, `detail` (the new vote) |
//! | `pair_open` | `token` (id), `cluster` (or null: the first node's), `nodes` (or null: the cluster's node count), `expires_at_ms` |
//! | `pair_signed` | `token`, `cluster`, `node`, `serial`, `address` (the audit log line's facts) |
//! | `pair_refused` | `token` (the presented id, or null), `address`, `reason` ([`Refusal::kind`], or `no_window`, `bad_request`), `status` (HTTP) |
//! | `pair_closed` | `token`, `cluster` (or null), `reason` (`completed`, `expired`, `locked_out`, `closed`, `replaced`, `unpaired`) |
//! | `unpair` | `cluster`, `revoked` (certificates), `disconnected` (clients) |
//!
//! No event carries a token's secret: only its public id.
//!
//! [`Refusal::kind`]: crate::pair::token::Refusal::kind

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What happened, by `kind` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A node appeared in the Report.
    Connect {
        /// Cluster name.
        cluster: String,
        /// Node id.
        node_id: u32,
        /// Its address.
        detail: String,
    },
    /// A node left the Report.
    Disconnect {
        /// Cluster name.
        cluster: String,
        /// Node id.
        node_id: u32,
        /// Its address.
        detail: String,
    },
    /// A node's last vote changed.
    Vote {
        /// Cluster name.
        cluster: String,
        /// Node id.
        node_id: u32,
        /// The new vote (`ack`, `nack`, …, `none`).
        detail: String,
    },
    /// A pairing window was opened.
    PairOpen {
        /// The token's public id.
        token: String,
        /// The cluster, if given.
        cluster: Option<String>,
        /// Certificates allowed, if given.
        nodes: Option<u32>,
        /// When it expires (server uptime, ms).
        expires_at_ms: u64,
    },
    /// A certificate was signed.
    PairSigned {
        /// The window's token id.
        token: String,
        /// Cluster name.
        cluster: String,
        /// The node name the request gave.
        node: String,
        /// The certificate's serial number.
        serial: u64,
        /// The requester's address.
        address: String,
    },
    /// A pairing request was refused.
    PairRefused {
        /// The presented token's id, if it was a token.
        token: Option<String>,
        /// The requester's address.
        address: String,
        /// Why, one word.
        reason: &'static str,
        /// The HTTP status it got.
        status: u16,
    },
    /// A pairing window stopped pairing.
    PairClosed {
        /// Its token id.
        token: String,
        /// Its cluster, if bound.
        cluster: Option<String>,
        /// Why, one word.
        reason: &'static str,
    },
    /// A cluster was unpaired.
    Unpair {
        /// Cluster name.
        cluster: String,
        /// Certificates revoked.
        revoked: usize,
        /// Clients disconnected.
        disconnected: usize,
    },
}

/// The panel's state between snapshots.
#[derive(Debug, Default)]
pub struct Feed {
    last: Option<Report>,
    since: BTreeMap<String, u64>,
    paired: Option<BTreeSet<String>>,
    events: VecDeque<Entry>,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    uptime_ms: u64,
    connected_since_ms: &'a BTreeMap<String, u64>,
    paired: Option<&'a BTreeSet<String>>,
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
            let (cluster, node_id) = ((*cluster).to_string(), *id);
            match old.get(key) {
                None => {
                    self.since.insert(key.clone(), now_ms);
                    let detail = address.to_string();
                    log.push(Event::Connect {
                        cluster,
                        node_id,
                        detail,
                    });
                }
                Some((_, _, before)) if before != vote => {
                    let detail = vote_word(*vote).to_string();
                    log.push(Event::Vote {
                        cluster,
                        node_id,
                        detail,
                    });
                }
                Some(_) => {}
            }
        }
        for (key, (cluster, id, _)) in &old {
            if !new.contains_key(key) {
                self.since.remove(key);
                let address = key.rsplit_once('/').map_or("", |(_, a)| a);
                log.push(Event::Disconnect {
                    cluster: (*cluster).to_string(),
                    node_id: *id,
                    detail: address.to_string(),
                });
            }
        }
        for event in log {
            self.note(now_ms, event);
        }
        self.last = Some(report);
        true
    }

    /// Logs `event` at `now_ms`, dropping the oldest past [`MAX_EVENTS`].
    pub fn note(&mut self, now_ms: u64, event: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Entry {
            at_ms: now_ms,
            event,
        });
    }

    /// Takes the paired clusters (the daemon's pairing state has them);
    /// until the first call, the snapshot's `paired` is `null`. Copies
    /// only when they changed.
    pub fn set_paired(&mut self, paired: &BTreeSet<String>) {
        if self.paired.as_ref() != Some(paired) {
            self.paired = Some(paired.clone());
        }
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
            paired: self.paired.as_ref(),
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
            .map(|e| match &e.event {
                Event::Connect { detail, .. } => (e.at_ms, "connect", detail.as_str()),
                Event::Vote { detail, .. } => (e.at_ms, "vote", detail.as_str()),
                Event::Disconnect { detail, .. } => (e.at_ms, "disconnect", detail.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (10, "connect", "a:1"),
                (30, "vote", "ack"),
                (40, "disconnect", "a:1")
            ]
        );
        let json: serde_json::Value = serde_json::from_slice(&f.snapshot(50)).unwrap();
        assert_eq!(
            json["events"][0],
            serde_json::json!({"at_ms": 10, "kind": "connect", "cluster": "c", "node_id": 1, "detail": "a:1"})
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

    #[test]
    fn pairing_steps_join_the_same_list_with_their_facts() {
        let mut f = Feed::default();
        f.update(5, report(vec![]));
        f.note(
            10,
            Event::PairOpen {
                token: "0123abcd".into(),
                cluster: None,
                nodes: Some(2),
                expires_at_ms: 1_800_010,
            },
        );
        f.note(
            20,
            Event::PairRefused {
                token: Some("0123abcd".into()),
                address: "192.0.2.7:40000".into(),
                reason: "bad_secret",
                status: 403,
            },
        );
        f.note(
            30,
            Event::PairSigned {
                token: "0123abcd".into(),
                cluster: "c".into(),
                node: "pve1".into(),
                serial: 7,
                address: "192.0.2.8:40001".into(),
            },
        );
        f.note(
            40,
            Event::PairClosed {
                token: "0123abcd".into(),
                cluster: Some("c".into()),
                reason: "completed",
            },
        );
        f.note(
            50,
            Event::Unpair {
                cluster: "c".into(),
                revoked: 2,
                disconnected: 0,
            },
        );
        // A connect after them lands in the same list, in order.
        f.update(60, report(vec![node(1, "a:1", None)]));
        let json: serde_json::Value = serde_json::from_slice(&f.snapshot(70)).unwrap();
        let events = json["events"].as_array().unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "pair_open",
                "pair_refused",
                "pair_signed",
                "pair_closed",
                "unpair",
                "connect"
            ]
        );
        assert_eq!(
            events[0],
            serde_json::json!({"at_ms": 10, "kind": "pair_open", "token": "0123abcd",
                "cluster": null, "nodes": 2, "expires_at_ms": 1_800_010})
        );
        assert_eq!(
            events[1],
            serde_json::json!({"at_ms": 20, "kind": "pair_refused", "token": "0123abcd",
                "address": "192.0.2.7:40000", "reason": "bad_secret", "status": 403})
        );
        assert_eq!(
            events[2],
            serde_json::json!({"at_ms": 30, "kind": "pair_signed", "token": "0123abcd",
                "cluster": "c", "node": "pve1", "serial": 7, "address": "192.0.2.8:40001"})
        );
        assert_eq!(events[3]["reason"], "completed");
        assert_eq!(events[4]["revoked"], 2);
        // Pairing steps share the bound.
        for i in 0..MAX_EVENTS {
            f.note(
                100 + u64::try_from(i).unwrap(),
                Event::Unpair {
                    cluster: "x".into(),
                    revoked: 1,
                    disconnected: 0,
                },
            );
        }
        assert_eq!(f.events().len(), MAX_EVENTS);
        assert_eq!(f.events().front().map(|e| e.at_ms), Some(100));
    }

    #[test]
    fn paired_is_null_without_pairing_then_the_set_given() {
        let mut f = Feed::default();
        f.update(5, report(vec![node(1, "a:1", None)]));
        let json: serde_json::Value = serde_json::from_slice(&f.snapshot(10)).unwrap();
        assert!(json["paired"].is_null(), "{json}");
        let mut set: BTreeSet<String> = ["lab", "c"].map(String::from).into();
        f.set_paired(&set);
        let json: serde_json::Value = serde_json::from_slice(&f.snapshot(10)).unwrap();
        assert_eq!(json["paired"], serde_json::json!(["c", "lab"]));
        set.remove("c");
        f.set_paired(&set);
        let json: serde_json::Value = serde_json::from_slice(&f.snapshot(10)).unwrap();
        assert_eq!(json["paired"], serde_json::json!(["lab"]));
        set.clear();
        f.set_paired(&set);
        let json: serde_json::Value = serde_json::from_slice(&f.snapshot(10)).unwrap();
        assert_eq!(json["paired"], serde_json::json!([]));
    }
}
