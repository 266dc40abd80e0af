//! The `test` algorithm (`qdevices/qnetd-algo-test.c`): every membership
//! list gets ACK, so every partition is quorate. Only for testing; the
//! 3.0.3 client offers it only with `net_test_algorithm_enabled=on`.

use super::Event;
use crate::proto::Vote;

/// Mirrors the `qnetd_algo_test_*` callbacks: config and quorum lists and
/// heuristics changes get NO_CHANGE; membership lists and ASK_FOR_VOTE get
/// ACK; everything else does nothing.
#[must_use]
pub fn handle(event: &Event<'_>) -> Vote {
    match event {
        Event::MembershipList { .. } | Event::AskForVote => Vote::Ack,
        Event::ConfigList { .. } | Event::QuorumList | Event::HeuristicsChange { .. } => {
            Vote::NoChange
        }
        Event::VoteInfoReply { .. } | Event::Timer | Event::Disconnect { .. } => Vote::Undefined,
    }
}
