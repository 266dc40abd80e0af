//! Message framing: a 6-byte header (u16 type, u32 payload length, both
//! big-endian) followed by the payload (`qdevices/msg.c`).
//!
//! The length field counts the payload only. On a 32-bit target
//! `6 + length` can overflow `usize`, so every length goes through checked
//! arithmetic ([`Header::total_len`]).

use super::enums::MsgType;

/// Length of the message header.
pub const HEADER_LEN: usize = 6;

/// A decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type as sent (may be unknown).
    pub msg_type: MsgType,
    /// Payload length in bytes (header excluded).
    pub payload_len: u32,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes of `buf`; `None` if fewer are
    /// available.
    #[must_use]
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let (h, _) = buf.split_first_chunk::<HEADER_LEN>()?;
        let [t0, t1, l0, l1, l2, l3] = *h;
        Some(Self {
            msg_type: MsgType::from(u16::from_be_bytes([t0, t1])),
            payload_len: u32::from_be_bytes([l0, l1, l2, l3]),
        })
    }

    /// Header plus payload length, or `None` if it does not fit a `usize`
    /// (possible on 32-bit targets).
    #[must_use]
    pub fn total_len(&self) -> Option<usize> {
        usize::try_from(self.payload_len)
            .ok()?
            .checked_add(HEADER_LEN)
    }

    /// Header plus payload length as a u64, which never overflows.
    #[must_use]
    pub fn total_len_u64(&self) -> u64 {
        u64::from(self.payload_len).saturating_add(HEADER_LEN as u64)
    }

    /// The 6 header bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [t0, t1] = u16::from(self.msg_type).to_be_bytes();
        let [l0, l1, l2, l3] = self.payload_len.to_be_bytes();
        [t0, t1, l0, l1, l2, l3]
    }
}

/// Result of looking for a complete frame in a buffer (httparse style:
/// a short buffer is not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// More bytes are needed.
    Partial,
    /// A complete frame of this many bytes starts the buffer.
    Complete(T),
}

impl<'a> Frame<&'a [u8]> {
    /// Splits the frame that `header` (already parsed from the start of
    /// `buf`) announces off `buf`: the frame and the bytes after it, or
    /// [`Status::Partial`] while `buf` is shorter. The header is not parsed
    /// again, so a reader that checks the header first (type, size) parses
    /// it once per message.
    #[must_use]
    pub fn split(header: Header, buf: &'a [u8]) -> Status<(Self, &'a [u8])> {
        match header.total_len().and_then(|len| buf.split_at_checked(len)) {
            Some((buffer, rest)) => Status::Complete((Self { buffer, header }, rest)),
            None => Status::Partial,
        }
    }

    /// The whole message, header included, for as long as the buffer lives.
    #[must_use]
    pub fn into_bytes(self) -> &'a [u8] {
        self.buffer
    }
}

/// A zero-copy view of one complete message.
///
/// Construct it with [`Frame::new_checked`]; afterwards no accessor can
/// panic.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
    header: Header,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks whether `buf` starts with a complete frame.
    #[must_use]
    pub fn check(buf: &[u8]) -> Status<usize> {
        match Header::parse(buf).map(|h| Frame::split(h, buf)) {
            Some(Status::Complete((frame, _))) => Status::Complete(frame.as_bytes().len()),
            _ => Status::Partial,
        }
    }

    /// Wraps a buffer that holds exactly one complete message.
    ///
    /// # Errors
    /// Returns the buffer back if it is shorter than the header or its
    /// length does not equal header + payload length.
    pub fn new_checked(buffer: T) -> Result<Self, T> {
        let bytes = buffer.as_ref();
        match Header::parse(bytes) {
            Some(header) if header.total_len() == Some(bytes.len()) => Ok(Self { buffer, header }),
            _ => Err(buffer),
        }
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        self.header.msg_type
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// The whole message, header included.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_partial_and_complete() {
        let echo = [0u8, 8, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 1];
        for cut in 0..echo.len() {
            assert_eq!(
                Frame::<&[u8]>::check(&echo[..cut]),
                Status::Partial,
                "cut {cut}"
            );
        }
        assert_eq!(Frame::<&[u8]>::check(&echo), Status::Complete(14));
        let frame = Frame::new_checked(&echo[..]).unwrap();
        assert_eq!(frame.msg_type(), MsgType::EchoRequest);
        assert_eq!(frame.payload().len(), 8);
        assert!(Frame::new_checked(&echo[..13]).is_err());
    }

    #[test]
    fn huge_length_never_overflows() {
        let h = Header::parse(&[0, 8, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(h.total_len_u64(), 0xffff_ffff + 6);
        if usize::BITS == 32 {
            assert_eq!(h.total_len(), None);
        }
        assert_eq!(Header::parse(&h.to_bytes()), Some(h));
    }
}
