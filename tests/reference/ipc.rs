//! The server's bookkeeping as the management socket shows it
//! (`corosync-qnetd-tool -s / -l -v`): client counts, cluster order, last
//! vote and last ACK/NACK, heuristics (membership / regular), config
//! versions, ring ids, KAP. Client addresses are replaced by client labels.

use qnetd::proto::{Heuristics, Vote};

use crate::support::runner::check;
use crate::support::scenario::{HIGHEST, Scenario, algo, node_tb, ring};

/// After an ffsplit split: node 1 shows "ACK (ACK)", node 2 "No change
/// (NACK)" (its last message was a NODE_LIST_REPLY), KAP tie-breaker shown
/// for the cluster, heuristics per source.
#[test]
fn ipc_list_after_ffsplit_split() {
    let mut s = Scenario::new("ipc_list_after_ffsplit_split");
    s.ipc("status").ipc("list");
    for id in [1, 2] {
        s.client(id).handshake().config_version(&[1, 2], 7);
    }
    s.ipc("status verbose");
    s.client(1)
        .membership_h(ring(1, 8), &[1, 2], Some(Heuristics::Pass));
    s.client(2).membership(ring(1, 8), &[1, 2]);
    s.alone(1, 12);
    s.alone(2, 12).expect_vote(Vote::Nack);
    s.client(2).heuristics_change(Heuristics::Fail);
    s.ipc("list verbose").ipc("list");
    s.client(1).quorum(true, &[1]);
    s.ipc("list verbose cluster testcluster");
    check(&s);
}

/// Several clusters (creation order), algorithms and tie-breakers as shown
/// by `list`, un-initialised connections counted by `status`, a cluster
/// disappearing with its last client, the cluster filter.
#[test]
fn ipc_clusters_algorithms_and_counts() {
    let mut s = Scenario::new("ipc_clusters_algorithms_and_counts");
    s.algorithm(algo::LMS).tie_breaker(node_tb(3));
    s.client_in("lmsc", 3).join(&[3, 4, 5]).membership_h(
        ring(3, 0x14),
        &[3, 4, 5],
        Some(Heuristics::Pass),
    );
    s.algorithm(algo::TWO_NODE_LMS)
        .tie_breaker(HIGHEST)
        .heartbeat(5000);
    s.client_in("two", 1)
        .join(&[1, 2])
        .membership(ring(1, 4), &[1]);
    s.client_in("two", 2).join(&[1, 2]).ask_for_vote();
    s.algorithm(algo::TEST);
    s.client_in("tst", 1).handshake();
    s.client(9).preinit();
    s.client(8).connect();
    s.ipc("status verbose").ipc("list verbose");
    s.ipc("list cluster two").ipc("list cluster nosuch");
    s.client_in("lmsc", 3).disconnect();
    s.ipc("status").ipc("list");
    check(&s);
}

/// Odd requests on the management socket get the same answers.
#[test]
fn ipc_odd_requests() {
    let mut s = Scenario::new("ipc_odd_requests");
    s.client(1).join(&[1]);
    s.ipc("")
        .ipc("bogus")
        .ipc("STATUS")
        .ipc("List Verbose Cluster");
    s.ipc("list cluster \"testcluster\"")
        .ipc("list bogus verbose");
    check(&s);
}
