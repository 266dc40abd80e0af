//! Engine benchmarks: one heartbeat round trip through `Instance` (bytes in,
//! bytes out), one decision of ffsplit and lms for clusters of 2, 8 and
//! 32 nodes (a split of the cluster into halves and back), and the worst
//! case of one ffsplit membership list: 16 members whose configuration and
//! membership lists have corosync's maximum of 384 nodes.

#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qnetd::core::ClientId;
use qnetd::core::{Event, Instance, InstanceConfig, Timestamp};
use qnetd::proto::build::{self, Init};
use qnetd::proto::{
    DecisionAlgorithm, Frame, Heuristics, Msg, MsgType, RingId, Status, TlsSupported,
};

struct Rig {
    inst: Instance,
    now: Timestamp,
    ids: Vec<ClientId>,
}

impl Rig {
    fn new(nodes: u32, algorithm: DecisionAlgorithm) -> Self {
        Self::with_list(nodes, algorithm, nodes)
    }

    /// `nodes` members whose configuration lists name nodes 1..=`list`.
    fn with_list(nodes: u32, algorithm: DecisionAlgorithm, list: u32) -> Self {
        let mut inst = Instance::new(InstanceConfig {
            tls: TlsSupported::Unsupported,
            ..InstanceConfig::default()
        });
        let now = Timestamp::from_millis(1);
        let all: Vec<u32> = (1..=list).collect();
        let mut rig = Self {
            inst: Instance::new(InstanceConfig::default()),
            now,
            ids: Vec::new(),
        };
        std::mem::swap(&mut rig.inst, &mut inst);
        for node in 1..=nodes {
            let addr: SocketAddr = format!("127.0.0.1:{}", 20000 + node).parse().unwrap();
            let id = rig.inst.accept(now, addr).unwrap();
            rig.ids.push(id);
            for m in [
                build::preinit(1, b"bench"),
                build::init(&Init {
                    algorithm,
                    ring_id: RingId { node_id: 1, seq: 1 },
                    ..Init::traced_ffsplit(2, node)
                }),
                build::config_list(3, true, None, &all),
            ] {
                rig.feed(id, &build::to_bytes(&m));
            }
        }
        rig
    }

    fn feed(&mut self, id: ClientId, bytes: &[u8]) {
        let _ = self.inst.handle_input(self.now, id, bytes);
        self.pump();
    }

    /// Drains output, answering VOTE_INFOs.
    fn pump(&mut self) {
        let mut reply = [0u8; 32];
        while let Some(Event::Close(_)) = self.inst.poll_event() {}
        while let Some(id) = self.inst.poll_transmit() {
            let mut answer = None;
            let mut rest = self.inst.outgoing(id);
            while let Status::Complete(n) = Frame::<&[u8]>::check(rest) {
                let m = Msg::parse(&rest[..n]).unwrap();
                if m.msg_type == MsgType::VoteInfo {
                    answer = Some(
                        build::vote_info_reply(m.seq.unwrap())
                            .emit(&mut reply)
                            .unwrap(),
                    );
                }
                rest = &rest[n..];
            }
            let len = self.inst.outgoing(id).len();
            self.inst.consume_outgoing(id, len);
            if let Some(len) = answer {
                let _ = self.inst.handle_input(self.now, id, &reply[..len]);
            }
        }
    }

    /// Every node reports the membership of its half (`split`) or of the
    /// whole cluster, with a new ring id each time.
    fn memberships(&mut self, split: bool, seq: u64) {
        let n = self.ids.len() as u32;
        let all: Vec<u32> = (1..=n).collect();
        for (i, id) in self.ids.clone().into_iter().enumerate() {
            let node = i as u32 + 1;
            let (members, ring) = if split {
                let half: Vec<u32> = if node <= n / 2 {
                    (1..=n / 2).collect()
                } else {
                    (n / 2 + 1..=n).collect()
                };
                let ring = RingId {
                    node_id: half[0],
                    seq,
                };
                (half, ring)
            } else {
                (all.clone(), RingId { node_id: 1, seq })
            };
            let m = build::to_bytes(&build::membership_list(
                10,
                ring,
                &members,
                Heuristics::Undefined,
            ));
            self.feed(id, &m);
        }
        // lms decides on its timer.
        self.now = self.now.add_millis(2000);
        self.inst.handle_timeout(self.now);
        self.pump();
    }
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    g.throughput(Throughput::Elements(1));
    let mut rig = Rig::new(2, DecisionAlgorithm::Ffsplit);
    let id = rig.ids[0];
    let echo = build::to_bytes(&build::echo_request(1));
    g.bench_function("heartbeat", |b| {
        b.iter(|| {
            let _ = rig.inst.handle_input(rig.now, id, black_box(&echo));
            let out = rig.inst.outgoing(id).len();
            rig.inst.consume_outgoing(id, out);
            while rig.inst.poll_transmit().is_some() {}
            out
        })
    });
    g.finish();
}

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for algorithm in [DecisionAlgorithm::Ffsplit, DecisionAlgorithm::Lms] {
        for nodes in [2u32, 8, 32] {
            let mut rig = Rig::new(nodes, algorithm);
            let mut seq = 2u64;
            rig.memberships(false, seq);
            g.throughput(Throughput::Elements(u64::from(nodes)));
            let name = if algorithm == DecisionAlgorithm::Ffsplit {
                "ffsplit"
            } else {
                "lms"
            };
            g.bench_function(BenchmarkId::new(name, nodes), |b| {
                b.iter(|| {
                    seq += 1;
                    rig.memberships(seq.is_multiple_of(2), seq);
                })
            });
        }
    }
    g.finish();
}

/// One stable membership list in a cluster of 16 members with maximal
/// (384-node) lists: the stability check and partition selection see every
/// member's full lists.
fn worst_case_list(c: &mut Criterion) {
    let mut g = c.benchmark_group("worst_case");
    let (nodes, list) = (16u32, qnetd::proto::types::MAX_NODES as u32);
    let mut rig = Rig::with_list(nodes, DecisionAlgorithm::Ffsplit, list);
    let all: Vec<u32> = (1..=list).collect();
    let m = build::to_bytes(&build::membership_list(
        10,
        RingId { node_id: 1, seq: 2 },
        &all,
        Heuristics::Undefined,
    ));
    for id in rig.ids.clone() {
        rig.feed(id, &m);
    }
    let first = rig.ids[0];
    g.throughput(Throughput::Elements(u64::from(list)));
    g.bench_function(BenchmarkId::new("ffsplit_16x384", list), |b| {
        b.iter(|| rig.feed(first, black_box(&m)))
    });
    g.finish();
}

criterion_group!(benches, roundtrip, decide, worst_case_list);
criterion_main!(benches);
