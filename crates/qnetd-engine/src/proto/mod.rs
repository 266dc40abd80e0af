//! The QNetd wire codec: framing, TLVs and the 18 message types.
//!
//! Pure functions over bytes: no I/O, no clock, no allocation.
//!
//! # Contract
//!
//! * [`Frame::check`] finds the end of the first message in a buffer or
//!   says [`Status::Partial`]; a short buffer is never an error.
//! * [`Msg::parse`] decodes a complete message. It never panics on any
//!   input; every malformed payload is a [`DecodeFailure`] whose
//!   [`DecodeError::reply_code`] is what the reference server replies.
//! * [`Msg::emit`] writes a message into a caller-provided slice in the
//!   option order of the reference's builders, so our replies are
//!   byte-identical to the reference's (`qdevices/msg.c`).
//!
//! Integers are big-endian everywhere, 64-bit ones included. Lengths derived
//! from the wire go through checked arithmetic because `usize` is 32 bits on
//! armv7.

// On top of the crate's panic-free rules: wire lengths use checked
// arithmetic (usize is 32 bits on armv7).
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod build;
pub mod enums;
pub mod error;
pub mod frame;
pub mod msg;
pub mod tlv;
pub mod types;

pub use enums::{
    DecisionAlgorithm, Heuristics, MsgType, NodeListType, NodeState, Quorate, ReplyErrorCode,
    SUPPORTED_DECISION_ALGORITHMS, SUPPORTED_MESSAGES, SUPPORTED_OPTIONS, TieBreakerMode,
    TlsSupported, TlvType, Vote,
};
pub use error::{DecodeError, EncodeError};
pub use frame::{Frame, HEADER_LEN, Header, Status};
pub use msg::{DecodeFailure, Msg};
pub use tlv::{TLV_HEADER_LEN, Tlv, TlvIter, TlvWriter};
pub use types::{
    NodeId, NodeInfo, NodeList, Nodes, RingId, SeqNum, TieBreaker, U16Array, list_contains,
};
