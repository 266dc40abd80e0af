#![no_main]
//! The management protocol: request lines through `mgmt::respond` (lexer,
//! parser, `status`/`list`/`json` rendering, the size rules) against an
//! instance whose clusters and nodes the same input made.
//!
//! Input: `[n_clients]`, then per client `[len][bytes]` fed to the engine
//! as one connection (PREINIT/INIT/NODE_LIST..., names included), then
//! `[max_send_hi]` and the rest split at LF into request lines. Nothing
//! panics, a reply never exceeds `max_send`, and every reply starts with
//! `OK\n` or `Error\n`.

use libfuzzer_sys::fuzz_target;
use qnetd::core::{Instance, InstanceConfig, Timestamp};
use qnetd::mgmt::{ServerView, respond};
use qnetd::proto::TlsSupported;

fuzz_target!(|data: &[u8]| {
    let mut inst = Instance::new(InstanceConfig {
        tls: TlsSupported::Unsupported,
        ..InstanceConfig::default()
    });
    let now = Timestamp::from_millis(0);
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    for i in 0..usize::from(n % 8) {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let addr = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
        if let Ok(id) = inst.accept(now, addr) {
            let _ = inst.handle_input(now, id, bytes);
        }
    }
    let Some((&hi, lines)) = rest.split_first() else {
        return;
    };
    let max_send = 16 + usize::from(hi) * 64;
    let view = ServerView {
        instance: &inst,
        listen_addr: if hi & 1 == 0 { None } else { Some("::1") },
        port: 5403,
    };
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let r = respond(line, &view, max_send);
        if let Some(reply) = &r.reply {
            assert!(reply.len() <= max_send, "{} > {max_send}", reply.len());
            assert!(reply.starts_with(b"OK\n") || reply.starts_with(b"Error\n"));
        }
    }
});
