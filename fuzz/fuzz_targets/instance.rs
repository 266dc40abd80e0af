#![no_main]
//! The engine under arbitrary clients: a script of (client, op) steps where
//! an op feeds bytes, moves the clock, or disconnects. Nothing panics and
//! the tables stay consistent.

use libfuzzer_sys::fuzz_target;
use qnetd_engine::core::ClientId;
use qnetd_engine::core::{Event, Instance, InstanceConfig, Timestamp};
use qnetd_engine::proto::TlsSupported;

fuzz_target!(|data: &[u8]| {
    let mut inst = Instance::new(InstanceConfig {
        tls: TlsSupported::Supported,
        max_client_send_buffers: 4,
        ..InstanceConfig::default()
    });
    let mut now = Timestamp::from_millis(0);
    let mut clients: Vec<Option<ClientId>> = vec![None; 4];
    let mut rest = data;
    while let [op, arg, tail @ ..] = rest {
        let slot = usize::from(op & 3);
        match op >> 6 {
            0 | 1 => {
                let len = usize::from(*arg).min(tail.len());
                let (bytes, after) = tail.split_at(len);
                rest = after;
                let id = match clients[slot] {
                    Some(id) => id,
                    None => {
                        let addr = format!("127.0.0.1:{}", 1000 + slot).parse().unwrap();
                        let Ok(id) = inst.accept(now, addr) else {
                            continue;
                        };
                        clients[slot] = Some(id);
                        id
                    }
                };
                let input = inst.handle_input(now, id, bytes);
                assert!(input.consumed <= bytes.len());
                if input.start_tls {
                    // No TLS layer here: the shell would close on failure.
                    inst.disconnect(now, id);
                    clients[slot] = None;
                }
                continue;
            }
            2 => now = now.add_millis(u64::from(*arg) * 100),
            _ => {
                if let Some(id) = clients[slot].take() {
                    inst.disconnect(now, id);
                }
            }
        }
        rest = tail;
        inst.handle_timeout(now);
        while let Some(Event::Close(id)) = inst.poll_event() {
            inst.disconnect(now, id);
            for c in &mut clients {
                if *c == Some(id) {
                    *c = None;
                }
            }
        }
        while let Some(id) = inst.poll_transmit() {
            let n = inst.outgoing(id).len();
            inst.consume_outgoing(id, n);
        }
        let open = clients.iter().flatten().count();
        assert_eq!(inst.client_count(), open);
        assert!(inst.cluster_count() <= open);
    }
});
