#![no_main]
//! Framing and decoding never panic, and `Complete(n)` never exceeds the input.

use libfuzzer_sys::fuzz_target;
use qnetd_engine::proto::{Frame, Msg, Status};

fuzz_target!(|data: &[u8]| {
    if let Status::Complete(n) = Frame::<&[u8]>::check(data) {
        assert!(n <= data.len());
        let _ = Msg::parse(&data[..n]);
    }
    let _ = Msg::parse(data);
});
