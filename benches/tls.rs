//! TLS cost per client: memory of an established `TlsSession` and handshake
//! time, with the store's ECDSA P-256 CA and server key and a client
//! certificate signed by it (as `certutil -s` makes them).
//!
//! `cargo bench --bench tls` prints two reports, then runs the criterion
//! benchmarks:
//! - memory: VmRSS growth while 1,000 sessions are kept (each handshaken with
//!   a fresh in-process client that is dropped at once, so only the server
//!   side stays), per TLS version, for established and for half-done
//!   handshakes;
//! - server CPU per handshake, timed around the server's calls only.
//!
//! The crate forbids unsafe code, so there is no counting allocator here: RSS
//! includes allocator overhead and fragmentation, which is what matters on
//! the Pi anyway. `cargo bench --bench tls -- none` prints only the reports.
//!
//! Measured on the shared 2-core x86_64 build VM (glibc malloc, load average
//! about 5 from other builds, bench profile without LTO):
//! - established session, idle: about 2.8 KB of RSS (TLS 1.2 and 1.3);
//! - handshake waiting for the client's second flight: 3.8 KB (TLS 1.2),
//!   5.5 KB (TLS 1.3), ServerHello flight still unsent included;
//! - server CPU: 0.23-0.42 ms per handshake (2,400-4,300 handshakes/s on one
//!   core), ECDSA P-256 server key, client certificate verified; the
//!   client+server pair takes 0.67 ms (TLS 1.2) / 0.78 ms (TLS 1.3).

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use qnetd::cert::store::CertStore;
use qnetd::net::tls::{TlsSession, server_config};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ServerConfig};

#[path = "../src/net/tls/testkit.rs"]
#[allow(dead_code, reason = "shared with the unit tests, which use more of it")]
mod testkit;

use testkit::{Client, client_config, make_request};

const SESSIONS: usize = 1000;

struct Setup {
    _tmp: tempfile::TempDir,
    server: Arc<ServerConfig>,
    ca: CertificateDer<'static>,
    client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = CertStore::open(tmp.path().join("nssdb"));
    store.init().expect("init");
    let (csr, key) = make_request("testcluster");
    let cert = fs::read(store.sign_request(&csr, "testcluster").expect("sign")).expect("read");
    Setup {
        server: server_config(&store, true).expect("server config"),
        ca: store.load_ca_certs().expect("CA").remove(0),
        client: (vec![CertificateDer::from(cert)], key),
        _tmp: tmp,
    }
}

impl Setup {
    fn client_config(&self, provider: CryptoProvider) -> Arc<ClientConfig> {
        let id = (self.client.0.clone(), self.client.1.clone_key());
        client_config(provider, &self.ca, Some(id))
    }
}

/// Runs a handshake to completion plus one small message each way, as a
/// qdevice's INIT and the reply. Returns the server's time in its calls.
fn handshake(
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
) -> (TlsSession, Duration) {
    let mut client = Client::new(client_cfg);
    let mut server_time = Duration::ZERO;
    let mut server = timed(&mut server_time, || {
        TlsSession::new(Arc::clone(server_cfg), &client.take_output()).expect("session")
    });
    let mut sent = false;
    loop {
        let to_client = server.pending_ciphertext().to_vec();
        server.consume_ciphertext(to_client.len());
        if !to_client.is_empty() {
            client.receive(&to_client).expect("client receive");
        }
        if !sent && !client.is_handshaking() {
            client.send(&[0u8; 64]).expect("client send");
            sent = true;
        }
        let to_server = client.take_output();
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
        if !to_server.is_empty() {
            timed(&mut server_time, || server.feed(&to_server)).expect("server feed");
        }
        if server.plaintext().len() == 64 {
            timed(&mut server_time, || {
                server.consume_plaintext(64);
                server.send_plaintext(&[1u8; 64])
            })
            .expect("server send");
        }
    }
    assert!(!server.is_handshaking(), "handshake did not complete");
    (server, server_time)
}

#[allow(clippy::disallowed_methods, reason = "a benchmark reads the clock")]
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = f();
    *total += start.elapsed();
    result
}

fn vm_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Keeps every measured session alive until the end, so that one
/// measurement cannot reuse memory freed by the previous one.
fn memory_report(setup: &Setup) -> Vec<TlsSession> {
    let mut keep = Vec::new();
    for (name, provider) in [
        ("TLS 1.3", rustls_ring::DEFAULT_TLS13_PROVIDER),
        ("TLS 1.2", rustls_ring::DEFAULT_TLS12_PROVIDER),
    ] {
        let client_cfg = setup.client_config(provider);
        // Warm the allocator and the lazily built parts of rustls.
        drop(
            (0..50)
                .map(|_| handshake(&setup.server, &client_cfg).0)
                .collect::<Vec<_>>(),
        );

        let before = vm_rss_kib();
        let sessions: Vec<_> = (0..SESSIONS)
            .map(|_| handshake(&setup.server, &client_cfg).0)
            .collect();
        let after = vm_rss_kib();
        eprintln!(
            "memory {name}: {SESSIONS} established sessions: VmRSS +{} KiB = {} bytes per session \
             (size_of TlsSession {} B)",
            after.saturating_sub(before),
            after.saturating_sub(before) * 1024 / SESSIONS as u64,
            size_of::<TlsSession>(),
        );
        keep.extend(sessions);

        // Half-done handshakes: ClientHello received, ServerHello sent.
        let before = vm_rss_kib();
        let pending: Vec<_> = (0..SESSIONS)
            .map(|_| {
                let mut client = Client::new(&client_cfg);
                TlsSession::new(Arc::clone(&setup.server), &client.take_output()).expect("session")
            })
            .collect();
        let after = vm_rss_kib();
        eprintln!(
            "memory {name}: {SESSIONS} handshakes waiting for the client's 2nd flight: VmRSS +{} KiB \
             = {} bytes per session",
            after.saturating_sub(before),
            after.saturating_sub(before) * 1024 / SESSIONS as u64,
        );
        keep.extend(pending);
    }
    keep
}

fn server_time_report(setup: &Setup) {
    for (name, provider) in [
        ("TLS 1.3", rustls_ring::DEFAULT_TLS13_PROVIDER),
        ("TLS 1.2", rustls_ring::DEFAULT_TLS12_PROVIDER),
    ] {
        let client_cfg = setup.client_config(provider);
        let mut total = Duration::ZERO;
        let rounds = 300u32;
        for _ in 0..rounds {
            total += handshake(&setup.server, &client_cfg).1;
        }
        let per = total / rounds;
        eprintln!(
            "server CPU {name}: {per:?} per handshake (ECDSA P-256 server key, ECDSA client \
             certificate), {:.0} handshakes/s on one core",
            1.0 / per.as_secs_f64()
        );
    }
}

fn bench_handshakes(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("handshake_pair");
    for (name, provider) in [
        ("tls13", rustls_ring::DEFAULT_TLS13_PROVIDER),
        ("tls12", rustls_ring::DEFAULT_TLS12_PROVIDER),
    ] {
        let client_cfg = setup.client_config(provider);
        group.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| handshake(&setup.server, &client_cfg),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn main() {
    let setup = setup();
    let sessions = memory_report(&setup);
    drop(sessions);
    server_time_report(&setup);
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_handshakes(&mut c, &setup);
    c.final_summary();
}
