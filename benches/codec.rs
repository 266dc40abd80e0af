//! Codec benchmarks: parse and emit per message type.

#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qnetd::proto::build::{self, Init};
use qnetd::proto::{Heuristics, Msg, RingId};

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let ring = RingId { node_id: 1, seq: 4 };
    let ids: Vec<u32> = (1..=32).collect();
    vec![
        (
            "preinit",
            build::to_bytes(&build::preinit(1, b"testcluster")),
        ),
        (
            "init",
            build::to_bytes(&build::init(&Init::traced_ffsplit(2, 1))),
        ),
        ("echo_request", build::to_bytes(&build::echo_request(7))),
        (
            "membership_2",
            build::to_bytes(&build::membership_list(5, ring, &[1, 2], Heuristics::Pass)),
        ),
        (
            "membership_32",
            build::to_bytes(&build::membership_list(5, ring, &ids, Heuristics::Pass)),
        ),
        (
            "quorum_32",
            build::to_bytes(&build::quorum_list(6, true, &ids)),
        ),
        (
            "vote_info_reply",
            build::to_bytes(&build::vote_info_reply(1)),
        ),
    ]
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, bytes) in samples() {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| Msg::parse(black_box(bytes)).map(|m| m.nodes.len()))
        });
    }
    g.finish();
}

fn emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("emit");
    for (name, bytes) in samples() {
        let msg = Msg::parse(&bytes).unwrap();
        let mut out = vec![0u8; bytes.len()];
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(&msg).emit(black_box(&mut out)))
        });
    }
    g.finish();
}

criterion_group!(benches, parse, emit);
criterion_main!(benches);
