//! Codec errors.
//!
//! Errors are small `Copy` values with static context, never strings built
//! at run time. Every decode error maps to the reply code the reference
//! server sends for it ([`DecodeError::reply_code`]).

use core::fmt;

use super::enums::{ReplyErrorCode, TlvType};

/// Why a message payload failed to decode.
///
/// The variants follow the return codes of the reference's `msg_decode`
/// (`qdevices/msg.c`) so that the log line and the reply are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A TLV has a length its type does not allow (C: -1).
    InvalidLength {
        /// The option.
        tlv: TlvType,
        /// Its length on the wire.
        len: u16,
    },
    /// The payload is not a sequence of complete TLVs: empty, a TLV running
    /// past the end, or stray bytes after the last TLV (C: -3).
    Inconsistent,
    /// A TLV has a value outside its range (C: -4).
    InvalidValue {
        /// The option.
        tlv: TlvType,
    },
    /// A fixed-capacity buffer is full (C: -2, an allocation failure).
    Capacity(&'static str),
}

impl DecodeError {
    /// The reply code the reference sends for this error: always
    /// `ERROR_DECODING_MSG`.
    #[must_use]
    pub const fn reply_code(self) -> ReplyErrorCode {
        ReplyErrorCode::ErrorDecodingMsg
    }

    /// The reference's log text for this error (`log_common_msg_decode_error`).
    #[must_use]
    pub const fn reference_text(self) -> &'static str {
        match self {
            Self::InvalidLength { .. } => "Received message with option with invalid length",
            Self::Inconsistent => "Received inconsistent msg (tlv len > msg size)",
            Self::InvalidValue { .. } => "Received message with option with invalid value",
            Self::Capacity(_) => "Can't allocate memory",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLength { tlv, len } => {
                write!(f, "option {tlv} has invalid length {len}")
            }
            Self::Inconsistent => f.write_str("inconsistent message (tlv len > msg size)"),
            Self::InvalidValue { tlv } => write!(f, "option {tlv} has an invalid value"),
            Self::Capacity(what) => write!(f, "too many entries in {what}"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small (or the message exceeds the limit).
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
    },
    /// A TLV value is longer than the 65535 bytes a TLV length can carry.
    ValueTooLong,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => write!(f, "message needs {needed} bytes"),
            Self::ValueTooLong => f.write_str("TLV value longer than 65535 bytes"),
        }
    }
}

impl core::error::Error for EncodeError {}
