//! Taking new qdevice connections, and the connections that have not
//! finished INIT yet: [`Server::accept`] drains the listener (retrying a
//! failed `accept` on a timer), asks [`super::admission`] whether the
//! address may have one more connection before INIT, makes room under
//! `-m` by closing the oldest such connection, and registers the socket.
//! A connection leaves admission once its INIT is received
//! ([`Server::note_init`]), or is closed when it did not finish INIT in
//! time ([`Server::expire_pre_init`]).

use mio::{Interest, Token};

use super::admission::Refusal;
use super::conn::{Conn, is_pre_init};
use super::{FIRST_CLIENT, Server, interrupted, would_block};
use crate::core::{ClientId, PeerAddr, Timestamp};

impl Server {
    pub(super) fn accept(&mut self, now: Timestamp) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => {
                    self.accept_failed = false;
                    return;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // E.g. EMFILE: keep serving the clients we have, and try
                    // again shortly (no new edge may come for the backlog).
                    if !self.accept_failed {
                        log::error!("Can't accept connection: {e}");
                    }
                    self.accept_failed = true;
                    return;
                }
            };
            if self.admission.admit(addr.ip()) == Err(Refusal::PerAddress) {
                log::warn!(
                    "Too many connections from {} that have not finished INIT. Not accepting connection",
                    addr.ip()
                );
                continue;
            }
            if self.admission.full(self.instance.client_count()) {
                self.evict_pre_init(now);
            }
            let Ok(id) = self.instance.accept(now, addr) else {
                continue; // max clients: dropping the stream closes it
            };
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("Can't set TCP_NODELAY: {e}");
            }
            let Ok(index) = usize::try_from(id.index()) else {
                continue;
            };
            let token = Token(FIRST_CLIENT + index);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("Can't add client to main poll loop: {e}");
                self.instance.disconnect(now, id);
                continue;
            }
            if self.conns.len() <= index {
                self.conns.resize_with(index + 1, || None);
            }
            if let Some(slot) = self.conns.get_mut(index) {
                *slot = Some(Conn {
                    stream,
                    id,
                    addr: PeerAddr(addr),
                    tls: None,
                    tls_announced: false,
                    pre_init: true,
                    fresh: true,
                });
                self.admission.accepted(now, id, addr.ip());
            }
        }
    }

    /// Closes the connections that did not finish INIT in `init_timeout`.
    pub(super) fn expire_pre_init(&mut self, now: Timestamp) {
        loop {
            let conns = &self.conns;
            let Some(id) = self.admission.pop_expired(now, |id| is_pre_init(conns, id)) else {
                return;
            };
            if let Some(conn) = self.conn(id) {
                log::warn!(
                    "Client {} did not finish INIT in time. Disconnecting",
                    conn.addr
                );
            }
            self.close(now, id);
        }
    }

    /// Makes room under `-m` by closing the oldest connection that has not
    /// finished INIT. Returns false if there is none.
    fn evict_pre_init(&mut self, now: Timestamp) -> bool {
        let conns = &self.conns;
        let Some(id) = self.admission.evict_oldest(|id| is_pre_init(conns, id)) else {
            return false;
        };
        if let Some(conn) = self.conn(id) {
            log::warn!(
                "Maximum clients reached. Disconnecting client {} that has not finished INIT",
                conn.addr
            );
        }
        self.close(now, id);
        true
    }

    /// After input: a connection that just finished INIT leaves admission.
    pub(super) fn note_init(&mut self, id: ClientId) {
        // The shell's own flag first: after INIT (every heartbeat) this is
        // one load, and the engine is asked only before.
        if !self.conn(id).is_some_and(|conn| conn.pre_init) {
            return;
        }
        let initialised = self
            .instance
            .client_info(id)
            .is_some_and(|info| info.init_received);
        if let Some(conn) = self.conn(id).filter(|_| initialised) {
            conn.pre_init = false;
            let ip = conn.addr.0.ip();
            self.admission.left(ip);
        }
    }
}
