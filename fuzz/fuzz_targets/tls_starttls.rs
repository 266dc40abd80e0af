#![no_main]
//! The TLS + STARTTLS path as the loop drives it, without sockets: bytes
//! go to the engine until it asks for STARTTLS, the rest of that read
//! starts a real [`qnetd::net::tls::TlsSession`] (the server configuration
//! of a real certificate store, client certificates required), later reads
//! are fed to the session, its plaintext goes to the engine and the
//! engine's output back through the session.
//!
//! Input: `[flags]`, then reads as `[len][bytes]`. With bit 0 of `flags` a
//! valid PREINIT + STARTTLS is sent first, so every input reaches the TLS
//! layer. Nothing panics, and buffered input stays bounded.

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use qnetd::cert::store::CertStore;
use qnetd::core::{Instance, InstanceConfig, Timestamp};
use qnetd::net::tls::{MAX_BUFFERED_INPUT, TlsSession, server_config};
use qnetd::proto::{TlsSupported, build};

fn config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("qnetd-fuzz-tls-{}", std::process::id()));
            let store = CertStore::open(&dir);
            store.ensure_initialized().expect("certificate store");
            let config = server_config(&store, true).expect("server config");
            // The configuration holds the keys; the files are not needed.
            let _ = std::fs::remove_dir_all(&dir);
            config
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let cfg = config();
    let mut inst = Instance::new(InstanceConfig {
        tls: TlsSupported::Required,
        ..InstanceConfig::default()
    });
    let now = Timestamp::from_millis(0);
    let Ok(id) = inst.accept(now, "127.0.0.1:1000".parse().unwrap()) else {
        return;
    };
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut reads: Vec<Vec<u8>> = Vec::new();
    if flags & 1 == 1 {
        let mut hello = build::to_bytes(&build::preinit(1, b"fuzz"));
        hello.extend(build::to_bytes(&build::starttls(2)));
        reads.push(hello);
    }
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        reads.push(bytes.to_vec());
        rest = after;
    }
    let mut session: Option<TlsSession> = None;
    let mut pending: Vec<u8> = Vec::new();
    for read in reads {
        match session.as_mut() {
            None => {
                pending.extend_from_slice(&read);
                let input = inst.handle_input(now, id, &pending);
                assert!(input.consumed <= pending.len());
                pending.drain(..input.consumed);
                if input.start_tls {
                    match TlsSession::new(cfg.clone(), &pending) {
                        Ok(s) => session = Some(s),
                        Err(_) => return,
                    }
                    pending.clear();
                }
            }
            Some(s) => {
                if s.feed(&read).is_err() {
                    return;
                }
                let plain = s.plaintext().to_vec();
                let input = inst.handle_input(now, id, &plain);
                assert!(input.consumed <= plain.len());
                s.consume_plaintext(input.consumed);
                assert!(s.plaintext().len() <= MAX_BUFFERED_INPUT);
            }
        }
        if let Some(s) = session.as_mut() {
            let out = inst.outgoing(id).to_vec();
            inst.consume_outgoing(id, out.len());
            if s.send_plaintext(&out).is_err() {
                return;
            }
            let n = s.pending_ciphertext().len();
            s.consume_ciphertext(n);
        }
    }
});
