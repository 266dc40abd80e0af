//! The tests' one way to cut a byte stream into qnetd messages
//! ([`take_frame`], [`split_frames`], both built on `proto::Frame::check`),
//! and the one plain-TCP wire client ([`WireClient`]) that the daemon and
//! management tests talk to a server with.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use qnetd::proto::{Frame, Status};

/// Removes and returns the first complete message at the front of `buf`,
/// if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    match Frame::<&[u8]>::check(buf) {
        Status::Complete(n) => Some(buf.drain(..n).collect()),
        _ => None,
    }
}

/// The complete messages at the start of `bytes`, and what follows them
/// (an incomplete or invalid message, or nothing).
pub fn split_frames(bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while let Status::Complete(n) = Frame::<&[u8]>::check(rest) {
        frames.push(&rest[..n]);
        rest = &rest[n..];
    }
    (frames, rest)
}

/// What [`WireClient::next`] got.
#[derive(Debug)]
pub enum Recv {
    Msg(Vec<u8>),
    /// EOF or a reset.
    Closed,
    Timeout,
}

/// A plain TCP connection to a server on 127.0.0.1 that sends raw bytes
/// and receives whole messages.
pub struct WireClient {
    pub stream: TcpStream,
    rx: Vec<u8>,
}

impl WireClient {
    /// Connects to 127.0.0.1:`port` (`TCP_NODELAY`, as qdevice does).
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            rx: Vec::new(),
        }
    }

    /// Our end's port: the server shows it as the client address.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next complete message, or `None` at EOF, on a reset or after
    /// `timeout` of waiting (see [`Self::next`] to tell them apart).
    pub fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        match self.next(timeout) {
            Recv::Msg(bytes) => Some(bytes),
            Recv::Closed | Recv::Timeout => None,
        }
    }

    /// The next complete message, the end of the connection, or nothing
    /// within `timeout`.
    #[allow(clippy::disallowed_methods, reason = "a test's read deadline")]
    pub fn next(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = take_frame(&mut self.rx) {
                return Recv::Msg(frame);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Recv::Timeout;
            };
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Recv::Closed,
                Ok(n) => self.rx.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Recv::Closed,
            }
        }
    }
}
