//! The receive buffer handed to rustls: the bytes the loop read from the
//! socket, consumed by rustls from the front.

use rustls::TlsInputBuffer;

/// Buffers that drain completely are freed when they hold more than this.
pub(super) const KEEP_CAPACITY: usize = 512;

/// The receive buffer handed to rustls: bytes from the socket, with a
/// consumed prefix that is dropped lazily.
#[derive(Debug, Default)]
pub(super) struct InputBuf {
    pub(super) buf: Vec<u8>,
    /// Bytes at the front already consumed by rustls.
    start: usize,
    eof: bool,
    close_notify: bool,
}

impl InputBuf {
    pub(super) fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Moves the unconsumed bytes to the front. rustls only requires that the
    /// content of `slice_mut()` is preserved, not its address.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
        }
    }

    pub(super) fn extend(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    #[cfg(test)]
    pub(super) fn read_from(&mut self, rd: &mut dyn std::io::Read) -> std::io::Result<usize> {
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + crate::net::READ_CHUNK, 0);
        let result = match self.buf.get_mut(old..) {
            Some(spare) => rd.read(spare),
            None => Ok(0),
        };
        let n = result
            .as_ref()
            .map_or(0, |&n| n.min(crate::net::READ_CHUNK));
        self.buf.truncate(old + n);
        if matches!(result, Ok(0)) {
            self.eof = true;
        }
        self.release_if_empty();
        result
    }

    pub(super) fn discard_all(&mut self) {
        self.start = self.buf.len();
        self.release_if_empty();
    }

    pub(super) fn release_if_empty(&mut self) {
        if self.pending() == 0 {
            self.start = 0;
            self.buf.clear();
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
    }
}

impl TlsInputBuffer for InputBuf {
    fn slice_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or_default()
    }

    fn discard(&mut self, num_bytes: usize) {
        self.start = self.start.saturating_add(num_bytes).min(self.buf.len());
    }

    fn received_close_notify(&mut self) {
        self.close_notify = true;
    }

    fn has_seen_eof(&self) -> bool {
        self.eof
    }
}
