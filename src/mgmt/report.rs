//! The reference's text reports, byte for byte (`qdevices/qnetd-ipc-cmd.c`:
//! `qnetd_ipc_cmd_status`, `qnetd_ipc_cmd_list`).
//!
//! Output is bytes, not `String`: cluster names are raw bytes on the wire
//! and the reference prints them as C strings (up to the first NUL),
//! whatever their encoding.

use std::io::Write as _;

use super::{ServerView, c_str, cluster_matches};
use crate::algo::{Cluster, Member};
use crate::core::ClientInfo;
use crate::proto::{DecisionAlgorithm, Heuristics, NodeInfo, TieBreakerMode, TlsSupported, Vote};

/// `tlv_tls_supported_to_str`.
#[must_use]
pub const fn tls_text(tls: TlsSupported) -> &'static str {
    match tls {
        TlsSupported::Unsupported => "Unsupported",
        TlsSupported::Supported => "Supported",
        TlsSupported::Required => "Required",
        TlsSupported::Unknown(_) => "Unhandled tls supported state",
    }
}

/// `tlv_decision_algorithm_type_to_str`.
#[must_use]
pub const fn algorithm_text(algorithm: DecisionAlgorithm) -> &'static str {
    match algorithm {
        DecisionAlgorithm::Test => "Test",
        DecisionAlgorithm::Ffsplit => "Fifty-Fifty split",
        DecisionAlgorithm::TwoNodeLms => "2 Node LMS",
        DecisionAlgorithm::Lms => "LMS",
        DecisionAlgorithm::Unknown(_) => "Unknown algorithm",
    }
}

/// `tlv_heuristics_to_str`.
#[must_use]
pub const fn heuristics_text(heuristics: Heuristics) -> &'static str {
    match heuristics {
        Heuristics::Undefined => "Undefined",
        Heuristics::Pass => "Pass",
        Heuristics::Fail => "Fail",
        Heuristics::Unknown(_) => "Unknown heuristics type",
    }
}

/// `tlv_vote_to_str`.
#[must_use]
pub const fn vote_text(vote: Vote) -> &'static str {
    match vote {
        Vote::Ack => "ACK",
        Vote::Nack => "NACK",
        Vote::AskLater => "Ask later",
        Vote::WaitForReply => "Wait for reply",
        Vote::NoChange => "No change",
        Vote::Undefined | Vote::Unknown(_) => "Unknown vote value",
    }
}

/// The `status` report.
#[must_use]
pub fn status(view: &ServerView<'_>, verbose: bool) -> Vec<u8> {
    let cfg = view.instance.config();
    let mut out = Vec::with_capacity(192);
    let _ = writeln!(
        out,
        "QNetd address:\t\t\t{}:{}",
        view.listen_addr.unwrap_or("*"),
        view.port
    );
    let cert = if cfg.tls != TlsSupported::Unsupported && cfg.client_cert_required {
        " (client certificate required)"
    } else {
        ""
    };
    let _ = writeln!(out, "TLS:\t\t\t\t{}{cert}", tls_text(cfg.tls));
    let _ = writeln!(
        out,
        "Connected clients:\t\t{}",
        view.instance.client_count()
    );
    let _ = writeln!(
        out,
        "Connected clusters:\t\t{}",
        view.instance.cluster_count()
    );
    if verbose {
        if cfg.max_clients != 0 {
            let _ = writeln!(out, "Maximum allowed clients:\t{}", cfg.max_clients);
        }
        let _ = writeln!(
            out,
            "Maximum send/receive size:\t{}/{} bytes",
            cfg.max_client_send_size, cfg.max_client_receive_size
        );
    }
    out
}

/// Whether the cluster runs ffsplit with the keep-active-partition
/// tie-breaker on every node
/// (`qnetd_ipc_cmd_keep_active_partition_tie_breaker_active`).
#[must_use]
pub fn kap_tie_breaker_active(cluster: &Cluster) -> bool {
    cluster
        .members
        .iter()
        .all(|m| m.algorithm == DecisionAlgorithm::Ffsplit && m.keep_active_partition_tie_breaker)
}

/// `<id>[ (<dcid>)], ...` (`qnetd_ipc_cmd_list_add_node_list`).
fn node_list(out: &mut Vec<u8>, list: &[NodeInfo]) {
    for (i, node) in list.iter().enumerate() {
        if i != 0 {
            out.extend_from_slice(b", ");
        }
        let _ = write!(out, "{}", node.node_id);
        if node.data_center_id != 0 {
            let _ = write!(out, " ({})", node.data_center_id);
        }
    }
}

/// One `Node ID` block (`qnetd_ipc_cmd_list_add_client_info`).
fn node(out: &mut Vec<u8>, m: &Member, info: Option<ClientInfo>, verbose: bool) {
    let _ = writeln!(out, "    Node ID {}:", m.node_id);
    match info {
        Some(info) => {
            let _ = writeln!(out, "        Client address:\t\t{}", info.addr);
        }
        None => out.extend_from_slice(b"        Client address:\t\t\n"),
    }
    if verbose {
        let hb = info.map_or(0, |i| i.heartbeat_interval);
        let _ = writeln!(out, "        HB interval:\t\t{hb}ms");
    }
    if let Some(version) = m.config_version {
        let _ = writeln!(out, "        Configuration version:\t{version}");
    }
    if !m.config_list.is_empty() {
        out.extend_from_slice(b"        Configured node list:\t");
        node_list(out, &m.config_list);
        out.push(b'\n');
    }
    if verbose {
        let _ = writeln!(out, "        Ring ID:\t\t{}", m.ring_id);
    }
    if !m.membership_list.is_empty() {
        out.extend_from_slice(b"        Membership node list:\t");
        node_list(out, &m.membership_list);
        out.push(b'\n');
    }
    if m.heuristics != Heuristics::Undefined || verbose {
        let _ = write!(
            out,
            "        Heuristics:\t\t{}",
            heuristics_text(m.heuristics)
        );
        if verbose {
            let _ = write!(
                out,
                " (membership: {}, regular: {})",
                heuristics_text(m.membership_heuristics),
                heuristics_text(m.regular_heuristics)
            );
        }
        out.push(b'\n');
    }
    if verbose {
        let (started, verified) =
            info.map_or((false, false), |i| (i.tls_started, i.tls_peer_verified));
        let _ = write!(
            out,
            "        TLS active:\t\t{}",
            if started { "Yes" } else { "No" }
        );
        if started && verified {
            out.extend_from_slice(b" (client certificate verified)");
        }
        out.push(b'\n');
    }
    if m.last_sent_vote != Vote::Undefined {
        let _ = write!(out, "        Vote:\t\t\t{}", vote_text(m.last_sent_vote));
        if m.last_sent_ack_nack_vote != Vote::Undefined {
            let _ = write!(out, " ({})", vote_text(m.last_sent_ack_nack_vote));
        }
        out.push(b'\n');
    }
}

/// The tie-breaker line of a cluster; an unknown mode prints nothing
/// after the tab, as the reference's switch does.
fn tie_breaker(out: &mut Vec<u8>, m: &Member) {
    out.extend_from_slice(b"    Tie-breaker:\t");
    match m.tie_breaker.mode {
        TieBreakerMode::Lowest => out.extend_from_slice(b"Node with lowest node ID"),
        TieBreakerMode::Highest => out.extend_from_slice(b"Node with highest node ID"),
        TieBreakerMode::NodeId => {
            let _ = write!(out, "Node with node ID {}", m.tie_breaker.node_id);
        }
        TieBreakerMode::Unknown(_) => {}
    }
    out.push(b'\n');
}

/// The `list` report: clusters in creation order, nodes in node-id order,
/// optionally only the cluster named `filter` (see [`cluster_matches`]).
#[must_use]
pub fn list(view: &ServerView<'_>, verbose: bool, filter: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for cluster in view.instance.clusters() {
        if !cluster_matches(filter, &cluster.name) {
            continue;
        }
        // Escaped: the name comes from the network and must not reach the
        // admin's terminal raw (issue 11, finding 6).
        let _ = writeln!(
            out,
            "Cluster \"{}\":",
            crate::algo::model::NameDisplay(c_str(&cluster.name))
        );
        for (i, m) in cluster.members.iter().enumerate() {
            if i == 0 {
                let kap = if kap_tie_breaker_active(cluster) {
                    " (KAP Tie-breaker)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "    Algorithm:\t\t{}{kap}",
                    algorithm_text(m.algorithm)
                );
                tie_breaker(&mut out, m);
            }
            node(&mut out, m, view.instance.client_info(m.client), verbose);
        }
    }
    out
}
