//! One simulated client's side of the protocol: every frame from the
//! server checked against the requests sent (type, sequence number, echo
//! bytes), the handshake replies, and the votes answered at once.

use super::*;

impl Client {
    pub(super) fn on_frame(&mut self, frame: &[u8], ctx: &mut Ctx) -> Result<(), Fail> {
        let h = Header::parse(frame).ok_or_else(|| proto("short frame"))?;
        if h.msg_type == MsgType::EchoReply {
            let p = self
                .pending
                .pop_front()
                .ok_or_else(|| proto("ECHO_REPLY without a request"))?;
            let Req::Echo(kind) = p.req else {
                return Err(proto(format!(
                    "ECHO_REPLY where {:?} was expected",
                    p.req.reply_type()
                )));
            };
            // The reply is the request with only the type changed.
            let mut want = Msg::new(MsgType::EchoReply);
            want.seq = Some(p.seq);
            let mut buf = [0u8; 16];
            let n = want.emit(&mut buf).map_err(|e| proto(format!("{e}")))?;
            if buf.get(..n) != Some(frame) {
                return Err(proto(format!(
                    "ECHO_REPLY {frame:02x?} is not the request with seq {}",
                    p.seq
                )));
            }
            return self.on_echo(kind, p, ctx);
        }
        let msg = Msg::parse(frame)
            .map_err(|e| proto(format!("undecodable {:?}: {}", h.msg_type, e.error)))?;
        match msg.msg_type {
            MsgType::VoteInfo => return self.on_vote_info(&msg, ctx),
            MsgType::ServerError => {
                return Err(proto(format!(
                    "SERVER_ERROR {} (seq {:?})",
                    msg.reply_error_code
                        .map_or("without code", ReplyErrorCode::as_str),
                    msg.seq
                )));
            }
            _ => {}
        }
        let p = self
            .pending
            .pop_front()
            .ok_or_else(|| proto(format!("unexpected {:?}", msg.msg_type)))?;
        if msg.msg_type != p.req.reply_type() {
            return Err(proto(format!(
                "got {:?} where {:?} was expected",
                msg.msg_type,
                p.req.reply_type()
            )));
        }
        if msg.seq != Some(p.seq) {
            return Err(proto(format!(
                "{:?} with seq {:?}, expected {}",
                msg.msg_type, msg.seq, p.seq
            )));
        }
        match p.req {
            Req::Preinit => self.on_preinit_reply(&msg, ctx),
            Req::Init => self.on_init_reply(&msg, ctx),
            Req::SetOption => {
                if msg.keep_active_partition_tie_breaker != Some(true) {
                    return Err(proto("SET_OPTION_REPLY without KAP = 1"));
                }
                self.maybe_ready(ctx);
                Ok(())
            }
            Req::List(ty, ring) => {
                if msg.node_list_type != Some(ty) {
                    return Err(proto(format!(
                        "NODE_LIST_REPLY type {:?}, expected {ty:?}",
                        msg.node_list_type
                    )));
                }
                if msg.ring_id != Some(ring) {
                    return Err(proto(format!(
                        "NODE_LIST_REPLY ring {:?}, expected {ring}",
                        msg.ring_id
                    )));
                }
                let vote = msg
                    .vote
                    .ok_or_else(|| proto("NODE_LIST_REPLY without a vote"))?;
                if vote.is_ack_or_nack() {
                    self.decide(vote, ring, ctx);
                }
                self.maybe_ready(ctx);
                Ok(())
            }
            Req::Echo(_) => Err(proto("internal: echo reply took the slow path")),
        }
    }

    fn on_preinit_reply(&mut self, msg: &Msg<'_>, ctx: &mut Ctx) -> Result<(), Fail> {
        let tls = msg
            .tls_supported
            .ok_or_else(|| proto("PREINIT_REPLY without TLS_SUPPORTED"))?;
        if msg.tls_client_cert_required.is_none() {
            return Err(proto("PREINIT_REPLY without TLS_CLIENT_CERT_REQUIRED"));
        }
        if let Some((configs, name)) = &ctx.tls {
            if tls == TlsSupported::Unsupported {
                return Err(proto("the server does not support TLS"));
            }
            let config = configs
                .get(self.cluster as usize)
                .ok_or_else(|| proto("internal: no TLS config"))?
                .clone();
            let mut m = Msg::new(MsgType::StartTls);
            m.seq = Some(self.next_seq());
            self.queue(&m)?;
            let hs = config
                .connect(name.clone())
                .start_handshake(&mut self.wbuf)
                .map_err(tls_fail)?;
            self.transport = Transport::Handshake {
                hs: Some(Box::new(ClientHandshake::NeedsInput(hs))),
                input: VecInput::default(),
            };
            self.set_st(St::Tls, ctx);
            Ok(())
        } else {
            if tls == TlsSupported::Required {
                return Err(proto("the server requires TLS (use --tls)"));
            }
            self.set_st(St::Init, ctx);
            self.send_init(ctx)
        }
    }

    fn on_init_reply(&mut self, msg: &Msg<'_>, ctx: &mut Ctx) -> Result<(), Fail> {
        match msg.reply_error_code {
            Some(ReplyErrorCode::NoError) => {}
            Some(code) => return Err(proto(format!("INIT_REPLY error {}", code.as_str()))),
            None => return Err(proto("INIT_REPLY without REPLY_ERROR_CODE")),
        }
        let has = |a: Option<U16Array<'_>>, v: u16| a.is_some_and(|a| a.iter().any(|x| x == v));
        if !has(msg.supported_options, 23) || !has(msg.supported_options, 22) {
            return Err(proto(
                "INIT_REPLY without options 22/23 in SUPPORTED_OPTIONS",
            ));
        }
        if msg.supported_messages.is_none() {
            return Err(proto("INIT_REPLY without SUPPORTED_MESSAGES"));
        }
        let sizes_ok = msg
            .server_maximum_request_size
            .is_some_and(|s| s >= MIN_REQUEST_SIZE)
            && msg.server_maximum_reply_size.is_some();
        if !sizes_ok {
            return Err(proto("INIT_REPLY with missing or too small size limits"));
        }
        if !has(msg.supported_decision_algorithms, 1) {
            return Err(proto(
                "INIT_REPLY without ffsplit in SUPPORTED_DECISION_ALGORITHMS",
            ));
        }
        self.echo_seq = 0;
        self.set_st(St::Lists, ctx);
        let mut m = Msg::new(MsgType::SetOption);
        m.seq = Some(self.next_seq());
        m.keep_active_partition_tie_breaker = Some(true);
        self.request(&m, Req::SetOption)?;
        self.node_list(NodeListType::InitialConfig)?;
        self.node_list(NodeListType::Membership)?;
        self.node_list(NodeListType::Quorum)?;
        if let Some(hb) = ctx.heartbeat {
            // Real clients' timers are independent: spread the first beat
            // over one interval instead of beating in lock step.
            let ms = u64::try_from(hb.as_millis()).unwrap_or(u64::MAX);
            let first = Instant::now() + Duration::from_millis(ctx.rand_below(ms) + 1);
            ctx.hb_heap
                .push(Reverse((first, self.idx, self.generation)));
        }
        Ok(())
    }

    fn maybe_ready(&mut self, ctx: &mut Ctx) {
        if self.st == St::Lists && self.pending.iter().all(|p| matches!(p.req, Req::Echo(_))) {
            self.set_st(St::Ready, ctx);
        }
    }

    fn decide(&mut self, vote: Vote, ring: RingId, ctx: &mut Ctx) {
        let d = Decision { vote, ring };
        self.decision = Some(d);
        let now = Instant::now();
        if self.expect == Some(d) && !self.met {
            self.met = true;
            self.decision_at = Some(now);
            ctx.stats.storm_left -= 1;
            ctx.stats.last_decision = Some(now);
        }
    }

    fn on_vote_info(&mut self, msg: &Msg<'_>, ctx: &mut Ctx) -> Result<(), Fail> {
        if !matches!(self.st, St::Lists | St::Ready) {
            return Err(proto("VOTE_INFO before INIT"));
        }
        let seq = msg.seq.ok_or_else(|| proto("VOTE_INFO without seq"))?;
        let vote = msg.vote.ok_or_else(|| proto("VOTE_INFO without vote"))?;
        let ring = msg
            .ring_id
            .ok_or_else(|| proto("VOTE_INFO without ring id"))?;
        if !vote.is_ack_or_nack() {
            return Err(proto(format!("VOTE_INFO with vote {}", vote.as_str())));
        }
        ctx.stats.vote_infos += 1;
        self.decide(vote, ring, ctx);
        let mut m = Msg::new(MsgType::VoteInfoReply);
        m.seq = Some(seq);
        self.queue(&m)
    }

    fn on_echo(&mut self, kind: Echo, p: Pending, ctx: &mut Ctx) -> Result<(), Fail> {
        match kind {
            Echo::Heartbeat => {
                self.hb_pending = false;
                ctx.stats.heartbeats += 1;
            }
            Echo::Load => {
                ctx.stats.load_replies += 1;
                ctx.stats.load_out -= 1;
                if ctx.mode == Mode::Closed {
                    self.send_echo(Echo::Load, ctx)?;
                }
            }
            Echo::Latency => {
                let us = Instant::now().saturating_duration_since(p.sent).as_micros();
                let _ = ctx
                    .hist
                    .record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                ctx.stats.latency_replies += 1;
            }
            Echo::Round => {
                ctx.stats.rounds_done += 1;
                if ctx.stats.rounds_done < ctx.round_target && !ctx.round_list.is_empty() {
                    let next = ctx.stats.rounds_done % ctx.round_list.len();
                    ctx.baton = ctx.round_list.get(next).copied();
                }
            }
        }
        Ok(())
    }
}
