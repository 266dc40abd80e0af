//! TLV iteration and writing.
//!
//! A TLV is a u16 type, a u16 value length and the value (`qdevices/tlv.c`).
//! A payload must be **one or more complete TLVs** with nothing left over:
//! an empty payload, a TLV running past the end, or 1 to 3 stray bytes are
//! all [`DecodeError::Inconsistent`], which is what the reference's
//! `tlv_iter_next` concludes for these inputs.

use super::enums::TlvType;
use super::error::{DecodeError, EncodeError};

/// Length of a TLV header (type + length).
pub const TLV_HEADER_LEN: usize = 4;

/// One TLV borrowed from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The option type.
    pub ty: TlvType,
    /// The value bytes.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The value length as it was on the wire.
    #[must_use]
    pub fn wire_len(&self) -> u16 {
        u16::try_from(self.value.len()).unwrap_or(u16::MAX)
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N], DecodeError> {
        <[u8; N]>::try_from(self.value).map_err(|_| DecodeError::InvalidLength {
            tlv: self.ty,
            len: self.wire_len(),
        })
    }

    /// Decodes a u8 value (`tlv_iter_decode_u8`).
    ///
    /// # Errors
    /// [`DecodeError::InvalidLength`] unless the value is 1 byte.
    pub fn u8(&self) -> Result<u8, DecodeError> {
        self.fixed::<1>().map(|[b]| b)
    }

    /// Decodes a big-endian u16 value.
    ///
    /// # Errors
    /// [`DecodeError::InvalidLength`] unless the value is 2 bytes.
    pub fn u16(&self) -> Result<u16, DecodeError> {
        self.fixed::<2>().map(u16::from_be_bytes)
    }

    /// Decodes a big-endian u32 value.
    ///
    /// # Errors
    /// [`DecodeError::InvalidLength`] unless the value is 4 bytes.
    pub fn u32(&self) -> Result<u32, DecodeError> {
        self.fixed::<4>().map(u32::from_be_bytes)
    }

    /// Decodes a big-endian u64 value.
    ///
    /// # Errors
    /// [`DecodeError::InvalidLength`] unless the value is 8 bytes.
    pub fn u64(&self) -> Result<u64, DecodeError> {
        self.fixed::<8>().map(u64::from_be_bytes)
    }

    /// Decodes a value of exactly `N` bytes.
    ///
    /// # Errors
    /// [`DecodeError::InvalidLength`] unless the value is `N` bytes.
    pub fn bytes<const N: usize>(&self) -> Result<[u8; N], DecodeError> {
        self.fixed::<N>()
    }
}

/// Iterator over the TLVs of a payload.
///
/// Yields `Err` once for a malformed payload and then stops.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    started: bool,
    done: bool,
}

impl<'a> TlvIter<'a> {
    /// Iterates over `payload` (the bytes after the message header, or the
    /// value of a NODE_INFO).
    #[must_use]
    pub const fn new(payload: &'a [u8]) -> Self {
        Self {
            rest: payload,
            started: false,
            done: false,
        }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.started && self.rest.is_empty() {
            self.done = true;
            return None;
        }
        self.started = true;
        let Some((header, after)) = self.rest.split_first_chunk::<TLV_HEADER_LEN>() else {
            self.done = true;
            return Some(Err(DecodeError::Inconsistent));
        };
        let [t0, t1, l0, l1] = *header;
        let ty = TlvType::from(u16::from_be_bytes([t0, t1]));
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some((value, rest)) = after.split_at_checked(len) else {
            self.done = true;
            return Some(Err(DecodeError::Inconsistent));
        };
        self.rest = rest;
        Some(Ok(Tlv { ty, value }))
    }
}

/// Where encoded bytes go: a slice being filled, or a counter that only
/// measures ([`TlvWriter::measure`]).
#[derive(Debug)]
pub struct TlvWriter<'b> {
    out: Option<&'b mut [u8]>,
    pos: usize,
}

impl<'b> TlvWriter<'b> {
    /// Writes into `out`, starting at offset 0.
    #[must_use]
    pub fn new(out: &'b mut [u8]) -> Self {
        Self {
            out: Some(out),
            pos: 0,
        }
    }

    /// A writer that stores nothing and only counts bytes.
    #[must_use]
    pub const fn measure() -> Self {
        Self { out: None, pos: 0 }
    }

    /// Bytes written (or counted) so far.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Appends raw bytes.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] if the output slice is full.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall { needed: usize::MAX })?;
        if let Some(out) = self.out.as_deref_mut() {
            let dst = out
                .get_mut(self.pos..end)
                .ok_or(EncodeError::BufferTooSmall { needed: end })?;
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
        Ok(())
    }

    /// Appends a TLV header for a value of `len` bytes.
    ///
    /// # Errors
    /// [`EncodeError::ValueTooLong`] if `len` exceeds 65535, or a full buffer.
    pub fn header(&mut self, ty: TlvType, len: usize) -> Result<(), EncodeError> {
        let len = u16::try_from(len).map_err(|_| EncodeError::ValueTooLong)?;
        let [t0, t1] = u16::from(ty).to_be_bytes();
        let [l0, l1] = len.to_be_bytes();
        self.raw(&[t0, t1, l0, l1])
    }

    /// Appends a TLV with the given value bytes.
    ///
    /// # Errors
    /// As [`TlvWriter::header`].
    pub fn tlv(&mut self, ty: TlvType, value: &[u8]) -> Result<(), EncodeError> {
        self.header(ty, value.len())?;
        self.raw(value)
    }

    /// Appends a u8 TLV.
    ///
    /// # Errors
    /// A full buffer.
    pub fn u8(&mut self, ty: TlvType, v: u8) -> Result<(), EncodeError> {
        self.tlv(ty, &[v])
    }

    /// Appends a big-endian u16 TLV.
    ///
    /// # Errors
    /// A full buffer.
    pub fn u16(&mut self, ty: TlvType, v: u16) -> Result<(), EncodeError> {
        self.tlv(ty, &v.to_be_bytes())
    }

    /// Appends a big-endian u32 TLV.
    ///
    /// # Errors
    /// A full buffer.
    pub fn u32(&mut self, ty: TlvType, v: u32) -> Result<(), EncodeError> {
        self.tlv(ty, &v.to_be_bytes())
    }

    /// Appends a big-endian u64 TLV.
    ///
    /// # Errors
    /// A full buffer.
    pub fn u64(&mut self, ty: TlvType, v: u64) -> Result<(), EncodeError> {
        self.tlv(ty, &v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(payload: &[u8]) -> Result<usize, DecodeError> {
        let mut n = 0;
        for t in TlvIter::new(payload) {
            t?;
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn payload_rules() {
        // (case, payload, expected)
        let cases: &[(&str, &[u8], Result<usize, DecodeError>)] = &[
            ("empty payload", &[], Err(DecodeError::Inconsistent)),
            ("one byte", &[0], Err(DecodeError::Inconsistent)),
            ("three bytes", &[0, 0, 0], Err(DecodeError::Inconsistent)),
            ("empty value", &[0, 1, 0, 0], Ok(1)),
            ("two tlvs", &[0, 1, 0, 1, 7, 0, 2, 0, 0], Ok(2)),
            (
                "two stray bytes",
                &[0, 1, 0, 0, 9, 9],
                Err(DecodeError::Inconsistent),
            ),
            (
                "value past end",
                &[0, 1, 0, 50, 1, 2, 3],
                Err(DecodeError::Inconsistent),
            ),
        ];
        for (name, payload, expected) in cases {
            assert_eq!(&collect(payload), expected, "{name}");
        }
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut it = TlvIter::new(&[0, 1]);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
    }

    #[test]
    fn writer_measures_and_writes_the_same() {
        let mut m = TlvWriter::measure();
        m.u32(TlvType::MsgSeqNumber, 7).unwrap();
        m.u8(TlvType::Vote, 1).unwrap();
        let mut buf = [0u8; 13];
        let mut w = TlvWriter::new(&mut buf);
        w.u32(TlvType::MsgSeqNumber, 7).unwrap();
        w.u8(TlvType::Vote, 1).unwrap();
        assert_eq!(m.len(), w.len());
        assert_eq!(buf, [0, 0, 0, 4, 0, 0, 0, 7, 0, 19, 0, 1, 1]);
        let mut small = [0u8; 5];
        let mut w = TlvWriter::new(&mut small);
        assert_eq!(
            w.u32(TlvType::MsgSeqNumber, 7),
            Err(EncodeError::BufferTooSmall { needed: 8 })
        );
    }
}
