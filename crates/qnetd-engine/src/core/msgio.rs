//! Message I/O of a client (`qdevices/msgio.c`, `qnetd-client-send.c`):
//! reassembling messages from the bytes the shell feeds in, skipping the
//! ones refused at the header, and queueing replies.
//!
//! Framing is [`Frame::split`]: the header is parsed once per message, as
//! soon as its 6 bytes are in (type and size are checked then, as
//! `msgio_read` does), and the complete message is handed to the handlers
//! without another parse. A message that arrives whole in one read is
//! handled in place; only a split one is copied into the client's buffer.

use super::client::{Client, ClientId, Skip};
use super::instance::{Event, Input, Instance};
use super::time::Timestamp;
use super::timers::{TimerKind, Timers};
use crate::proto::{Frame, HEADER_LEN, Header, Msg, MsgType, ReplyErrorCode, Status};

/// Builds a SERVER_ERROR.
pub(super) fn server_error(seq: Option<u32>, code: ReplyErrorCode) -> Msg<'static> {
    let mut m = Msg::new(MsgType::ServerError);
    m.seq = seq;
    m.reply_error_code = Some(code);
    m
}

impl Instance {
    /// Feeds bytes received from a client.
    ///
    /// Complete messages are processed at once; a partial message is kept
    /// until the rest arrives. Processing stops right after an accepted
    /// STARTTLS: the returned count then excludes the bytes after it, which
    /// belong to the TLS handshake ([`Input::start_tls`] is set).
    #[must_use]
    pub fn handle_input(&mut self, now: Timestamp, id: ClientId, mut data: &[u8]) -> Input {
        let total = data.len();
        let max_receive = self.cfg.max_client_receive_size;
        while !data.is_empty() {
            let Some((client, timers)) = self.client_mut_split(id) else {
                break;
            };
            if client.closing {
                break;
            }
            if let Some(skip) = client.skip.as_mut() {
                let take = usize::try_from(skip.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                skip.remaining -= take as u64;
                data = data.get(take..).unwrap_or_default();
                if skip.remaining == 0 {
                    let reason = skip.reason;
                    client.skip = None;
                    self.send(id, &server_error(None, reason));
                }
                continue;
            }
            let header = match client.rx_header {
                Some(header) => header,
                None => {
                    let parsed = if client.rx.is_empty() {
                        Header::parse(data)
                    } else {
                        // Complete the buffered header.
                        let take = HEADER_LEN.saturating_sub(client.rx.len()).min(data.len());
                        let (head, rest) = data.split_at(take);
                        client.rx.extend_from_slice(head);
                        data = rest;
                        Header::parse(&client.rx)
                    };
                    let Some(header) = parsed else {
                        client.rx.extend_from_slice(data);
                        return Input::all(total);
                    };
                    if let Some(skip) = check_header(header, max_receive) {
                        if client.rx.is_empty() {
                            data = data.get(HEADER_LEN..).unwrap_or_default();
                        } else {
                            client.rx.clear();
                        }
                        if skip.remaining == 0 {
                            self.send(id, &server_error(None, skip.reason));
                        } else {
                            client.skip = Some(skip);
                        }
                        continue;
                    }
                    header
                }
            };
            if client.rx.is_empty() {
                // Fast path: the whole message straight from the input.
                let Status::Complete((frame, rest)) = Frame::split(header, data) else {
                    client.rx.extend_from_slice(data);
                    client.rx_header = Some(header);
                    return Input::all(total);
                };
                restart_dpd(now, id, client, timers);
                data = rest;
                if self.process(now, id, frame) {
                    return Input::tls(total - data.len());
                }
                continue;
            }
            // The body of a buffered message.
            let len = header.total_len().unwrap_or(HEADER_LEN);
            let take = len.saturating_sub(client.rx.len()).min(data.len());
            let (body, rest) = data.split_at(take);
            client.rx.extend_from_slice(body);
            data = rest;
            if client.rx.len() < len {
                client.rx_header = Some(header);
                return Input::all(total);
            }
            client.rx_header = None;
            let mut buf = core::mem::take(&mut client.rx);
            restart_dpd(now, id, client, timers);
            let start_tls = match Frame::split(header, &buf) {
                Status::Complete((frame, _)) => self.process(now, id, frame),
                Status::Partial => false,
            };
            if let Some(client) = self.client_mut(id) {
                // Keep the buffer's capacity for the next message.
                buf.clear();
                client.rx = buf;
            }
            if start_tls {
                return Input::tls(total - data.len());
            }
        }
        Input::all(total)
    }

    /// Queues a message for a client. On overflow (send buffers or size),
    /// the client is closed, as the reference does ("Can't alloc ... msg").
    pub(super) fn send(&mut self, id: ClientId, msg: &Msg<'_>) -> bool {
        let len = msg.buffer_len();
        self.enqueue(id, len, |buf| msg.emit(buf).is_ok())
    }

    pub(super) fn enqueue(
        &mut self,
        id: ClientId,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> bool,
    ) -> bool {
        let max_size = self.cfg.max_client_send_size;
        let max_msgs = self.cfg.max_client_send_buffers;
        let Some(client) = self.client_mut(id) else {
            return false;
        };
        if client.closing {
            return false;
        }
        if len > max_size || client.tx.messages() >= max_msgs || !client.tx.push_with(len, write) {
            log::error!(
                "Can't alloc msg for client {} (queue full or message too large). Disconnecting client connection.",
                client.addr
            );
            self.close(id);
            return false;
        }
        if !client.dirty {
            client.dirty = true;
            self.dirty.push_back(id);
        }
        true
    }

    /// Marks a client for closing: the shell closes the socket and calls
    /// [`Instance::disconnect`].
    pub(super) fn close(&mut self, id: ClientId) {
        if let Some(client) = self.client_mut(id)
            && !client.closing
        {
            client.closing = true;
            self.events.push_back(Event::Close(id));
        }
    }
}

/// Every complete, non-skipped message restarts the DPD timer, even one
/// that gets an error reply.
fn restart_dpd(now: Timestamp, id: ClientId, client: &mut Client, timers: &mut Timers) {
    if client.dpd.is_armed() {
        let deadline = now.add_millis(client.dpd_interval);
        timers.set(id, TimerKind::Dpd, &mut client.dpd, Some(deadline));
    }
}

/// Header checks done as soon as the 6 header bytes are in
/// (`msgio_read`): unknown type, then size. Returns the skip to perform.
fn check_header(header: Header, max_receive: usize) -> Option<Skip> {
    let remaining = u64::from(header.payload_len);
    if !header.msg_type.is_known() {
        // With an empty body the reference completes the message before
        // it records why it skips it, and replies with error code 0.
        if remaining == 0 {
            return Some(Skip {
                reason: ReplyErrorCode::NoError,
                remaining,
            });
        }
        log::warn!(
            "Client sent unsupported msg type {}. Skipping message",
            u16::from(header.msg_type)
        );
        return Some(Skip {
            reason: ReplyErrorCode::UnsupportedMessage,
            remaining,
        });
    }
    if header.total_len_u64() > max_receive as u64 {
        log::warn!(
            "Client wants to send too long message {} bytes. Skipping message",
            header.payload_len
        );
        return Some(Skip {
            reason: ReplyErrorCode::MessageTooLong,
            remaining,
        });
    }
    None
}
