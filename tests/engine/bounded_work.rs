//! Bounded work per message (issue 11, finding 3): node lists and clusters
//! are capped at corosync's 384 nodes, and the cost of one node list grows
//! linearly with its length and with the members of its cluster. Work is
//! counted (the ffsplit work counter), never timed.

use crate::support::harness::{self, Harness, ring};
use qnetd::proto::build;
use qnetd::proto::types::MAX_NODES;
use qnetd::proto::{DecisionAlgorithm as Alg, Heuristics as H, MsgType as T, ReplyErrorCode as E};

/// The ffsplit work spent on one repeated (stable) membership list from
/// member 1 of a cluster of `members` members that all list the same
/// `len` nodes: the worst case of the stability check and the partition
/// selection.
fn work_of_one_list(members: u32, len: u32) -> u64 {
    let mut h = Harness::plain();
    let ids: Vec<u32> = (1..=len).collect();
    for k in 1..=members {
        h.join(k, b"c", Alg::Ffsplit, ring(1, 8));
        h.config(k, &ids);
    }
    for k in 1..=members {
        h.membership(k, ring(1, 8), &ids, H::Undefined);
    }
    let work = |h: &Harness| h.inst.clusters()[0].ffsplit_work;
    let before = work(&h);
    let got = h.membership(1, ring(1, 8), &ids, H::Undefined);
    assert!(
        got.iter().any(|g| g.ty() == T::NodeListReply),
        "no reply: {got:?}"
    );
    work(&h) - before
}

#[test]
fn ffsplit_work_per_list_is_linear_in_list_length_and_members() {
    let w_16_96 = work_of_one_list(16, 96);
    let w_16_192 = work_of_one_list(16, 192);
    let w_16_384 = work_of_one_list(16, 384);
    let w_32_384 = work_of_one_list(32, 384);
    let w_64_384 = work_of_one_list(64, 384);
    eprintln!(
        "work: 16x96 {w_16_96}, 16x192 {w_16_192}, 16x384 {w_16_384}, 32x384 {w_32_384}, 64x384 {w_64_384}"
    );
    for (small, big, what) in [
        (w_16_96, w_16_192, "list 96 -> 192"),
        (w_16_192, w_16_384, "list 192 -> 384"),
        (w_16_384, w_32_384, "members 16 -> 32"),
        (w_32_384, w_64_384, "members 32 -> 64"),
    ] {
        // Doubling the input must roughly double the work: more than 1.5x
        // (the counter counts), at most 2.5x (log factors of the sorts
        // included); a quadratic algorithm gives 4x.
        let ratio = big as f64 / small as f64;
        assert!(
            (1.5..=2.5).contains(&ratio),
            "{what}: work {small} -> {big} (x{ratio:.2})"
        );
    }
    // Absolute: a few dozen units per stored node id.
    let state = 64 * 384 * 2;
    assert!(
        w_64_384 <= 40 * state,
        "{w_64_384} work units for {state} ids"
    );
}

/// A node list of 385 nodes is refused with ERROR_DECODING_MSG (intended
/// difference: the reference accepts as many as fit in a message); 384 is
/// accepted.
#[test]
fn node_lists_are_capped_at_corosyncs_maximum() {
    let mut h = Harness::plain();
    h.join(1, b"c", Alg::Lms, ring(1, 8));
    let ids: Vec<u32> = (1..=u32::try_from(MAX_NODES).unwrap()).collect();
    assert_eq!(h.config(1, &ids).error(), None);
    let too_many: Vec<u32> = (1..=u32::try_from(MAX_NODES).unwrap() + 1).collect();
    h.send(1, &build::config_list(7, false, None, &too_many));
    let e = h.expect(1, T::ServerError);
    assert_eq!((e.error(), e.seq()), (Some(E::ErrorDecodingMsg), Some(7)));
    assert!(!h.is_closed(1));
}

/// A cluster has at most 384 members: the next INIT is refused
/// (INTERNAL_ERROR) and the others are not disturbed.
#[test]
fn clusters_are_capped_at_corosyncs_maximum() {
    let mut h = Harness::plain();
    let max = u32::try_from(MAX_NODES).unwrap();
    for k in 1..=max {
        h.join(k, b"c", Alg::Lms, ring(1, 8));
    }
    let e = h.join_with(
        max + 1,
        b"c",
        max + 1,
        Alg::Lms,
        harness::lowest(),
        8000,
        ring(1, 8),
    );
    assert_eq!(e, E::InternalError);
    assert_eq!(h.inst.clusters()[0].members.len(), MAX_NODES);
    // Another cluster is not affected.
    h.join(max + 2, b"d", Alg::Lms, ring(1, 8));
    assert_eq!(h.inst.cluster_count(), 2);
}
