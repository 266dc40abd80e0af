//! One simulated client's connection: state changes, the socket and TLS
//! I/O, the requests it sends, and the heartbeat and echo timers.

use super::*;

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("st", &self.st)
            .field("cluster", &self.cluster)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(super) fn set_st(&mut self, st: St, ctx: &mut Ctx) {
        if self.st.in_setup() {
            ctx.stats.in_setup -= 1;
        }
        if self.st == St::Ready {
            ctx.stats.ready -= 1;
        }
        if st.in_setup() {
            ctx.stats.in_setup += 1;
        }
        if st == St::Ready {
            ctx.stats.ready += 1;
            ctx.stats.last_ready = Some(Instant::now());
        }
        self.st = st;
    }

    pub(super) fn connect(&mut self, i: usize, registry: &mio::Registry, ctx: &mut Ctx) {
        ctx.stats.attempts += 1;
        self.generation = self.generation.wrapping_add(1);
        self.transport = Transport::Plain;
        self.rbuf.clear();
        self.wbuf.clear();
        self.wpos = 0;
        self.seq = 0;
        self.echo_seq = 0;
        self.pending.clear();
        self.ring = RingId {
            node_id: 1,
            seq: self.ring.seq,
        };
        self.solo = false;
        self.decision = None;
        self.hb_pending = false;
        self.set_st(St::Connecting, ctx);
        ctx.setup_heap.push(Reverse((
            Instant::now() + ctx.connect_timeout,
            self.idx,
            self.generation,
        )));
        let res = TcpStream::connect(ctx.addr).and_then(|mut s| {
            registry.register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)?;
            s.set_nodelay(true)?;
            Ok(s)
        });
        match res {
            Ok(s) => self.stream = Some(s),
            Err(e) => self.fail(i, ctx, Fail::Drop(format!("connect: {e}"))),
        }
    }

    pub(super) fn on_event(&mut self, i: usize, ctx: &mut Ctx, readable: bool, writable: bool) {
        if self.stream.is_none() {
            return;
        }
        if let Err(f) = self.on_event_inner(ctx, readable, writable) {
            self.fail(i, ctx, f);
        }
    }

    fn on_event_inner(
        &mut self,
        ctx: &mut Ctx,
        readable: bool,
        writable: bool,
    ) -> Result<(), Fail> {
        if self.st == St::Connecting {
            let Some(s) = self.stream.as_ref() else {
                return Ok(());
            };
            match s.take_error() {
                Ok(Some(e)) | Err(e) => return Err(Fail::Drop(format!("connect: {e}"))),
                Ok(None) => {}
            }
            match s.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Fail::Drop(format!("connect: {e}"))),
            }
            self.set_st(St::Preinit, ctx);
            self.send_preinit(ctx)?;
        }
        if readable {
            self.read(ctx)?;
        }
        let _ = writable;
        self.flush()
    }

    pub(super) fn fail(&mut self, i: usize, ctx: &mut Ctx, f: Fail) {
        let was_setup = self.st.in_setup();
        self.set_st(St::Failed, ctx);
        if let Some(s) = self.stream.take() {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        self.transport = Transport::Plain;
        let who = format!(
            "client {i} (cluster {}, node {})",
            ctx.names
                .get(self.cluster as usize)
                .map_or("?", String::as_str),
            self.node_id
        );
        match f {
            Fail::Drop(reason) if was_setup => {
                // A real qdevice reconnects after a random delay.
                ctx.stats.dropped += 1;
                ctx.errors.drops += 1;
                ctx.errors
                    .note(format!("{who} dropped during set-up: {reason}"));
                let ms = u64::try_from(ctx.retry_delay.as_millis()).unwrap_or(u64::MAX);
                let at = Instant::now() + Duration::from_millis(ctx.rand_below(ms));
                ctx.retry_heap
                    .push(Reverse((at, u32::try_from(i).unwrap_or(u32::MAX))));
                self.st = St::Idle;
            }
            Fail::Drop(reason) => {
                ctx.errors.protocol += 1;
                ctx.errors.note(format!("{who} disconnected: {reason}"));
            }
            Fail::Protocol(reason) => {
                ctx.errors.protocol += 1;
                ctx.errors.note(format!("{who}: {reason}"));
            }
        }
        // Outstanding echoes of a dead client will never come back.
        for p in self.pending.drain(..) {
            match p.req {
                Req::Echo(Echo::Load) => ctx.stats.load_out -= 1,
                Req::Echo(Echo::Latency) => ctx.stats.latency_sent -= 1,
                _ => {}
            }
        }
        if self.expect.is_some() && !self.met {
            self.expect = None;
            ctx.stats.storm_left -= 1;
        }
    }

    // ---- sending -------------------------------------------------------

    pub(super) fn queue(&mut self, msg: &Msg<'_>) -> Result<(), Fail> {
        let mut buf = [0u8; 512];
        let n = msg
            .emit(&mut buf)
            .map_err(|e| proto(format!("cannot encode {:?}: {e}", msg.msg_type)))?;
        let bytes = buf.get(..n).unwrap_or_default();
        match &mut self.transport {
            Transport::Plain => self.wbuf.extend_from_slice(bytes),
            Transport::Traffic { send, .. } => send
                .write(OutboundPlain::from(bytes), &mut self.wbuf)
                .map_err(tls_fail)?,
            Transport::Handshake { .. } => {
                return Err(proto("internal: message queued during the TLS handshake"));
            }
        }
        Ok(())
    }

    pub(super) fn request(&mut self, msg: &Msg<'_>, req: Req) -> Result<(), Fail> {
        self.queue(msg)?;
        self.pending.push_back(Pending {
            seq: msg.seq.unwrap_or(0),
            req,
            sent: Instant::now(),
        });
        Ok(())
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn flush(&mut self) -> Result<(), Fail> {
        if self.st == St::Connecting {
            return Ok(());
        }
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.wpos < self.wbuf.len() {
            match s.write(self.wbuf.get(self.wpos..).unwrap_or_default()) {
                Ok(0) => return Err(Fail::Drop("write returned 0".into())),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::Drop(format!("write: {e}"))),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    fn send_preinit(&mut self, ctx: &Ctx) -> Result<(), Fail> {
        let name = ctx
            .names
            .get(self.cluster as usize)
            .map_or(&b""[..], |s| s.as_bytes());
        let mut m = Msg::new(MsgType::Preinit);
        m.seq = Some(self.next_seq());
        m.cluster_name = Some(name);
        self.request(&m, Req::Preinit)
    }

    pub(super) fn send_init(&mut self, ctx: &Ctx) -> Result<(), Fail> {
        let mut m = Msg::new(MsgType::Init);
        m.seq = Some(self.next_seq());
        m.supported_messages = U16Array::from_be_bytes(&MSGS);
        m.supported_options = U16Array::from_be_bytes(&OPTS);
        m.node_id = Some(self.node_id);
        m.decision_algorithm = Some(DecisionAlgorithm::Ffsplit);
        m.heartbeat_interval = Some(ctx.hb_ms);
        m.tie_breaker = Some(TieBreaker {
            mode: TieBreakerMode::Lowest,
            node_id: 0,
        });
        m.ring_id = Some(self.ring);
        self.request(&m, Req::Init)?;
        Ok(())
    }

    pub(super) fn node_list(&mut self, ty: NodeListType) -> Result<(), Fail> {
        let mut m = Msg::new(MsgType::NodeList);
        m.seq = Some(self.next_seq());
        m.node_list_type = Some(ty);
        let me = self.node_id;
        let members: &[u32] = if self.solo {
            if me == 1 { &[1] } else { &[2] }
        } else {
            &[1, 2]
        };
        let mut infos = [NodeInfo::new(1), NodeInfo::new(2)];
        let mut count = 2;
        match ty {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                m.config_version = Some(1);
            }
            NodeListType::Membership => {
                m.ring_id = Some(self.ring);
                for (info, &n) in infos.iter_mut().zip(members) {
                    *info = NodeInfo::new(n);
                }
                count = members.len();
            }
            _ => {
                // Quorum: with the qdevice vote the side with node 1 (the
                // lowest id, which ffsplit prefers) stays quorate.
                let quorate = !self.solo || me == 1;
                m.quorate = Some(if quorate {
                    Quorate::Quorate
                } else {
                    Quorate::Inquorate
                });
                for info in &mut infos {
                    info.node_state = if members.contains(&info.node_id) {
                        NodeState::Member
                    } else {
                        NodeState::Dead
                    };
                }
            }
        }
        m.nodes = Nodes::from_slice(infos.get(..count).unwrap_or_default());
        self.request(&m, Req::List(ty, self.ring))
    }

    /// A membership change: new membership list, then the quorum list.
    pub(super) fn send_change(&mut self, i: usize, ctx: &mut Ctx) {
        let r = self
            .node_list(NodeListType::Membership)
            .and_then(|()| self.node_list(NodeListType::Quorum))
            .and_then(|()| self.flush());
        if let Err(f) = r {
            self.fail(i, ctx, f);
        }
    }

    pub(super) fn send_echo(&mut self, kind: Echo, ctx: &mut Ctx) -> Result<(), Fail> {
        self.echo_seq = self.echo_seq.wrapping_add(1);
        let mut m = Msg::new(MsgType::EchoRequest);
        m.seq = Some(self.echo_seq);
        self.request(&m, Req::Echo(kind))?;
        if kind == Echo::Load {
            ctx.stats.load_out += 1;
        }
        Ok(())
    }

    pub(super) fn send_echo_now(&mut self, i: usize, kind: Echo, ctx: &mut Ctx) {
        if let Err(f) = self.send_echo(kind, ctx).and_then(|()| self.flush()) {
            self.fail(i, ctx, f);
        }
    }

    pub(super) fn heartbeat(&mut self, i: usize, ctx: &mut Ctx) {
        if self.hb_pending {
            // What the real client does: "Server didn't send echo reply
            // message on time", disconnect.
            self.fail(
                i,
                ctx,
                proto(format!(
                    "no echo reply within the heartbeat interval ({} ms)",
                    ctx.hb_ms
                )),
            );
            return;
        }
        self.hb_pending = true;
        self.send_echo_now(i, Echo::Heartbeat, ctx);
    }

    // ---- receiving -----------------------------------------------------

    fn read(&mut self, ctx: &mut Ctx) -> Result<(), Fail> {
        loop {
            let Some(s) = self.stream.as_mut() else {
                return Ok(());
            };
            let (res, cap) = match &mut self.transport {
                Transport::Plain => {
                    let r = s.read(&mut ctx.scratch);
                    if let Ok(n) = r {
                        self.rbuf
                            .extend_from_slice(ctx.scratch.get(..n).unwrap_or_default());
                    }
                    (r, Some(ctx.scratch.len()))
                }
                Transport::Handshake { input, .. } | Transport::Traffic { input, .. } => {
                    (input.read(s), None)
                }
            };
            let n = match res {
                Ok(0) => return Err(Fail::Drop("server closed the connection".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Drop(format!("read: {e}"))),
            };
            if matches!(self.transport, Transport::Handshake { .. }) {
                self.drive_handshake(ctx)?;
            }
            self.drain_tls()?;
            self.process(ctx)?;
            // A short plain read means the socket is drained: Linux epoll
            // signals data arriving later with a new edge. (TLS reads are
            // bounded by VecInput's buffer, so they go on to WouldBlock.)
            if cap.is_some_and(|c| n < c) {
                return Ok(());
            }
        }
    }

    fn drive_handshake(&mut self, ctx: &mut Ctx) -> Result<(), Fail> {
        let Transport::Handshake { hs, input } = &mut self.transport else {
            return Ok(());
        };
        let mut state = *hs
            .take()
            .ok_or_else(|| proto("internal: no handshake state"))?;
        let mut fresh = true;
        loop {
            state = match state {
                ClientHandshake::NeedsInput(ni) => {
                    if !fresh {
                        *hs = Some(Box::new(ClientHandshake::NeedsInput(ni)));
                        return Ok(());
                    }
                    fresh = false;
                    ni.process(input, &mut self.wbuf).map_err(tls_fail)?
                }
                ClientHandshake::VerifyServerIdentity(v) => {
                    // The rest of the server's flight may already be in
                    // `input`: process again before reading the socket.
                    fresh = true;
                    v.with_config(&mut self.wbuf).map_err(tls_fail)?
                }
                ClientHandshake::Complete(split) => {
                    let input = std::mem::take(input);
                    self.transport = Transport::Traffic {
                        send: split.send,
                        recv: Some(split.receive),
                        input,
                    };
                    self.set_st(St::Init, ctx);
                    return self.send_init(ctx);
                }
                _ => return Err(proto("unexpected TLS handshake state")),
            };
        }
    }

    /// Decrypts whatever TLS records are buffered into `rbuf`.
    fn drain_tls(&mut self) -> Result<(), Fail> {
        let Transport::Traffic { send, recv, input } = &mut self.transport else {
            return Ok(());
        };
        let mut rt = recv
            .take()
            .ok_or_else(|| proto("internal: no TLS receiver"))?;
        loop {
            let next = match rt.read(input).map_err(tls_fail)? {
                ReceiveTrafficState::ReadMore(r) => {
                    *recv = Some(r);
                    return Ok(());
                }
                ReceiveTrafficState::Available(mut d) => {
                    self.rbuf.extend_from_slice(d.data());
                    d.into_next()
                }
                ReceiveTrafficState::FlushSender(f) => {
                    send.write(OutboundPlain::new_empty(), &mut self.wbuf)
                        .map_err(tls_fail)?;
                    f.into_next()
                }
                ReceiveTrafficState::CloseNotify => {
                    return Err(Fail::Drop("server sent TLS close_notify".into()));
                }
            };
            rt = match next {
                ReceiveTrafficState::ReadMore(r) => r,
                ReceiveTrafficState::FlushSender(f) => {
                    send.write(OutboundPlain::new_empty(), &mut self.wbuf)
                        .map_err(tls_fail)?;
                    match f.into_next() {
                        ReceiveTrafficState::ReadMore(r) => r,
                        _ => return Err(Fail::Drop("server sent TLS close_notify".into())),
                    }
                }
                ReceiveTrafficState::CloseNotify => {
                    return Err(Fail::Drop("server sent TLS close_notify".into()));
                }
                ReceiveTrafficState::Available(_) => {
                    return Err(proto("internal: unexpected TLS receive state"));
                }
            };
        }
    }

    fn process(&mut self, ctx: &mut Ctx) -> Result<(), Fail> {
        let buf = std::mem::take(&mut self.rbuf);
        let mut off = 0;
        let mut res = Ok(());
        while let Some(rest) = buf.get(off..) {
            let Status::Complete(n) = Frame::<&[u8]>::check(rest) else {
                if let Some(h) = Header::parse(rest)
                    && h.payload_len > MAX_FRAME
                {
                    res = Err(proto(format!("frame of {} bytes announced", h.payload_len)));
                }
                break;
            };
            let frame = rest.get(..n).unwrap_or_default();
            off += n;
            if let Err(e) = self.on_frame(frame, ctx) {
                res = Err(e);
                break;
            }
        }
        let mut buf = buf;
        buf.drain(..off.min(buf.len()));
        // Anything queued for the socket while `rbuf` was out stays in wbuf.
        self.rbuf = buf;
        res
    }
}
