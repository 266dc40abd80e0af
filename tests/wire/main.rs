//! The wire test binary: the codec against the reference's captured bytes
//! and property tests of parsing and stream splitting. Needs nothing
//! installed.

#[path = "../support/mod.rs"]
mod support;

mod golden_codec;
mod proptest_codec;
