#![no_main]
//! The rustls-style oracle: whatever parses re-encodes to bytes that parse
//! to the same message.

use libfuzzer_sys::fuzz_target;
use qnetd_engine::proto::{Frame, Msg, Status};

fuzz_target!(|data: &[u8]| {
    let Status::Complete(n) = Frame::<&[u8]>::check(data) else {
        return;
    };
    let Ok(msg) = Msg::parse(&data[..n]) else {
        return;
    };
    let mut out = vec![0u8; msg.buffer_len()];
    let len = msg.emit(&mut out).expect("a parsed message encodes");
    assert_eq!(len, out.len());
    if len == qnetd_engine::proto::HEADER_LEN {
        // Only unknown options: nothing to re-encode, and an empty payload
        // is invalid on the wire (crash-062fa3d1...-regression).
        return;
    }
    assert_eq!(Msg::parse(&out).expect("re-encoded message parses"), msg);
});
