//! Proves that the hot path does not allocate: after warm-up, 10,000
//! rounds of heartbeats and node lists — with a split and a heal of the
//! cluster every few rounds, for every algorithm — go through the engine
//! with zero heap allocations.
//!
//! A counting global allocator (stats_alloc) wraps the system allocator;
//! no logger is installed, so log macros cost nothing. The count is
//! process-wide, so this binary runs without the libtest harness
//! (`harness = false`): no other thread (the harness's output capture and
//! timers) can allocate while the rounds are counted.

use std::alloc::System;
use std::net::SocketAddr;

use qnetd_engine::core::{ClientId, Event, Instance, InstanceConfig, Timestamp};
use qnetd_engine::proto::build::{self, Init};
use qnetd_engine::proto::{
    DecisionAlgorithm, Frame, Heuristics, Msg, MsgType, RingId, Status, TlsSupported,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations and reallocations so far (this binary is one thread, so the
/// process-wide count is the rounds').
fn allocs() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

/// Pre-encoded client messages, so the measured loop encodes nothing.
struct Script {
    echo: Vec<u8>,
    joint: [Vec<u8>; 2],
    split: [Vec<u8>; 2],
    quorum: [Vec<u8>; 2],
}

fn script() -> Script {
    let joint = |_n: u32| {
        build::to_bytes(&build::membership_list(
            10,
            RingId {
                node_id: 1,
                seq: 100,
            },
            &[1, 2],
            Heuristics::Undefined,
        ))
    };
    let split = |n: u32| {
        build::to_bytes(&build::membership_list(
            11,
            RingId {
                node_id: n,
                seq: 101,
            },
            &[n],
            Heuristics::Pass,
        ))
    };
    Script {
        echo: build::to_bytes(&build::echo_request(1)),
        joint: [joint(1), joint(2)],
        split: [split(1), split(2)],
        quorum: [
            build::to_bytes(&build::quorum_list(12, true, &[1, 2])),
            build::to_bytes(&build::quorum_list(12, false, &[2])),
        ],
    }
}

struct Rig {
    inst: Instance,
    now: Timestamp,
    ids: [ClientId; 2],
    /// Messages received (to check the rounds really run).
    received: usize,
}

impl Rig {
    fn new(algorithm: DecisionAlgorithm) -> Self {
        let mut inst = Instance::new(InstanceConfig {
            tls: TlsSupported::Unsupported,
            ..InstanceConfig::default()
        });
        let now = Timestamp::from_millis(1);
        let mut ids = [ClientId::new(0, 0); 2];
        for (i, node) in [1u32, 2].into_iter().enumerate() {
            let addr: SocketAddr = format!("127.0.0.1:{}", 40000 + node).parse().unwrap();
            ids[i] = inst.accept(now, addr).unwrap();
        }
        let mut rig = Self {
            inst,
            now,
            ids,
            received: 0,
        };
        for (i, node) in [1u32, 2].into_iter().enumerate() {
            let msgs = [
                build::to_bytes(&build::preinit(1, b"cluster")),
                build::to_bytes(&build::init(&Init {
                    algorithm,
                    ring_id: RingId {
                        node_id: 1,
                        seq: 100,
                    },
                    ..Init::traced_ffsplit(2, node)
                })),
                build::to_bytes(&build::set_option_kap(3, true)),
                build::to_bytes(&build::config_list(4, true, Some(1), &[1, 2])),
            ];
            for m in &msgs {
                rig.feed(i, m);
            }
        }
        rig
    }

    /// Feeds one client message and answers everything the server sends
    /// (VOTE_INFOs get their VOTE_INFO_REPLY), without allocating.
    fn feed(&mut self, client: usize, bytes: &[u8]) {
        let id = self.ids[client];
        let input = self.inst.handle_input(self.now, id, bytes);
        assert_eq!(input.consumed, bytes.len());
        self.pump();
    }

    fn pump(&mut self) {
        let mut reply = [0u8; 64];
        loop {
            if let Some(Event::Close(id)) = self.inst.poll_event() {
                panic!("client {id:?} closed");
            }
            let Some(id) = self.inst.poll_transmit() else {
                return;
            };
            let mut pending_reply = None;
            {
                let out = self.inst.outgoing(id);
                let mut rest = out;
                while let Status::Complete(n) = Frame::<&[u8]>::check(rest) {
                    let msg = Msg::parse(&rest[..n]).unwrap();
                    self.received += 1;
                    if msg.msg_type == MsgType::VoteInfo {
                        let mut r = Msg::new(MsgType::VoteInfoReply);
                        r.seq = msg.seq;
                        let len = r.emit(&mut reply).unwrap();
                        pending_reply = Some(len);
                    }
                    assert_ne!(msg.msg_type, MsgType::ServerError);
                    rest = &rest[n..];
                }
            }
            let len = self.inst.outgoing(id).len();
            self.inst.consume_outgoing(id, len);
            if let Some(len) = pending_reply {
                let input = self.inst.handle_input(self.now, id, &reply[..len]);
                assert_eq!(input.consumed, len);
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.add_millis(ms);
        self.inst.handle_timeout(self.now);
        self.pump();
    }

    /// One round: both heartbeats, a membership and a quorum list each;
    /// every 10th round the cluster splits, the next one heals.
    fn round(&mut self, s: &Script, i: usize) {
        let split = i % 10 == 5;
        for c in 0..2 {
            self.feed(c, &s.echo);
            let m = if split { &s.split[c] } else { &s.joint[c] };
            self.feed(c, m);
        }
        // lms decides on its timer (heartbeat / 4).
        self.advance(2000);
        for c in 0..2 {
            self.feed(c, &s.quorum[usize::from(split)]);
        }
        self.advance(10);
    }
}

fn main() {
    let s = script();
    for algorithm in [
        DecisionAlgorithm::Ffsplit,
        DecisionAlgorithm::Lms,
        DecisionAlgorithm::TwoNodeLms,
        DecisionAlgorithm::Test,
    ] {
        let start = allocs();
        let mut rig = Rig::new(algorithm);
        assert!(
            allocs() > start,
            "the counter sees the set-up's allocations"
        );
        // Warm-up: buffers grow to their working size.
        for i in 0..20 {
            rig.round(&s, i);
        }
        let before_msgs = rig.received;
        let before = allocs();
        for i in 0..10_000 {
            rig.round(&s, i);
        }
        let n = allocs() - before;
        assert!(
            rig.received - before_msgs >= 60_000,
            "{algorithm}: rounds did not run"
        );
        assert_eq!(n, 0, "{algorithm}: {n} allocations in 10,000 rounds");
        eprintln!("no_alloc: {algorithm}: 0 allocations in 10,000 rounds");
    }
}
