//! The per-client half of the scenario DSL: [`C`], a handle on one client
//! whose methods append that client's steps (requests, raw bytes,
//! expectations) or change its builder state.

use super::*;

/// A handle on one client of a scenario; every method appends steps (or
/// changes builder state) and returns the handle for chaining.
#[derive(Debug)]
pub(crate) struct C<'a> {
    pub(super) s: &'a mut Scenario,
    pub(super) idx: usize,
}

impl C<'_> {
    fn spec(&mut self) -> &mut ClientSpec {
        &mut self.s.clients[self.idx]
    }

    fn step(self, action: Action) -> Self {
        self.s.push(Some(self.idx), action);
        self
    }

    /// Sends `req` (seq from the counter) and waits for its reply.
    pub(crate) fn send(self, req: Req) -> Self {
        let wait = if req.expects_reply() {
            Wait::Reply
        } else {
            Wait::Quiet
        };
        self.send_with(req, SeqMode::Auto, wait)
    }

    /// Sends `req` with an explicit seq mode and wait rule.
    pub(crate) fn send_with(self, req: Req, seq: SeqMode, wait: Wait) -> Self {
        self.step(Action::Send { req, seq, wait })
    }

    // ---- builder state -------------------------------------------------

    /// Algorithm for the next INIT.
    pub(crate) fn algorithm(mut self, a: DecisionAlgorithm) -> Self {
        self.spec().algorithm = a;
        self
    }

    /// Tie-breaker for the next INIT.
    pub(crate) fn tie_breaker(mut self, tb: TieBreaker) -> Self {
        self.spec().tie_breaker = tb;
        self
    }

    /// Heartbeat for the next INIT.
    pub(crate) fn heartbeat(mut self, ms: u32) -> Self {
        self.spec().heartbeat = ms;
        self
    }

    /// KAP value of the SET_OPTION that `handshake` sends (`None`: none).
    pub(crate) fn kap(mut self, kap: Option<bool>) -> Self {
        self.spec().kap = kap;
        self
    }

    /// Heuristics put into later membership lists (`None` = undefined).
    pub(crate) fn heuristics(mut self, h: Option<Heuristics>) -> Self {
        self.spec().heuristics = h;
        self
    }

    /// Cluster name for the next PREINIT.
    pub(crate) fn cluster(mut self, name: &[u8]) -> Self {
        self.spec().cluster = name.to_vec();
        self
    }

    // ---- connection ------------------------------------------------------

    /// Opens the TCP connection (done implicitly by the first send).
    pub(crate) fn connect(self) -> Self {
        self.step(Action::Connect)
    }

    /// Closes the connection.
    pub(crate) fn disconnect(self) -> Self {
        self.step(Action::Disconnect)
    }

    /// Closes the connection and opens a new one (counters restart).
    pub(crate) fn reconnect(self) -> Self {
        self.disconnect().connect()
    }

    /// Stops sending anything (no keepalive echoes): the server's dead-peer
    /// detection will drop the client after 1.5 × heartbeat.
    pub(crate) fn silence(self) -> Self {
        self.step(Action::Keepalive(false))
    }

    /// Waits until the server closes this connection (at most `ms`).
    pub(crate) fn wait_closed(self, ms: u64) -> Self {
        self.step(Action::WaitClosed(ms))
    }

    /// VOTE_INFOs are no longer answered automatically (see
    /// [`C::vote_reply`]).
    pub(crate) fn manual_votes(self) -> Self {
        self.step(Action::AutoVoteReply(false))
    }

    /// VOTE_INFOs are answered at once again (pending ones stay pending).
    pub(crate) fn auto_votes(self) -> Self {
        self.step(Action::AutoVoteReply(true))
    }

    // ---- handshake -------------------------------------------------------

    /// PREINIT with the client's cluster name.
    pub(crate) fn preinit(mut self) -> Self {
        let cluster = Some(self.spec().cluster.clone());
        self.send(Req::Preinit { cluster })
    }

    /// The INIT a 3.0.3 client sends, from the builder state.
    pub(crate) fn init_fields(&mut self) -> InitFields {
        let sp = self.spec();
        InitFields {
            supported_lists: true,
            node_id: Some(sp.node_id),
            algorithm: Some(sp.algorithm.into()),
            heartbeat: Some(sp.heartbeat),
            tie_breaker: Some(sp.tie_breaker),
            ring: Some(sp.ring),
        }
    }

    /// INIT as a 3.0.3 client sends it.
    pub(crate) fn init(mut self) -> Self {
        let f = self.init_fields();
        self.send(Req::Init(f))
    }

    /// INIT with some fields changed.
    pub(crate) fn init_with(mut self, edit: impl FnOnce(&mut InitFields)) -> Self {
        let mut f = self.init_fields();
        edit(&mut f);
        self.send(Req::Init(f))
    }

    /// PREINIT and INIT, nothing else (for INITs that are meant to fail).
    pub(crate) fn hello(self) -> Self {
        self.preinit().init()
    }

    /// PREINIT, INIT and (if the client has a KAP setting) SET_OPTION(KAP),
    /// as a 3.0.3 client does.
    pub(crate) fn handshake(mut self) -> Self {
        let kap = self.spec().kap;
        let c = self.preinit().init();
        match kap {
            Some(kap) => c.set_kap(kap),
            None => c,
        }
    }

    /// Handshake plus the initial config list `config`.
    pub(crate) fn join(self, config: &[u32]) -> Self {
        self.handshake().config(config)
    }

    /// SET_OPTION with only KEEP_ACTIVE_PARTITION_TIE_BREAKER.
    pub(crate) fn set_kap(self, kap: bool) -> Self {
        self.send(Req::SetOption {
            heartbeat: None,
            kap: Some(kap),
        })
    }

    /// SET_OPTION with only HEARTBEAT_INTERVAL.
    pub(crate) fn set_heartbeat(self, ms: u32) -> Self {
        self.send(Req::SetOption {
            heartbeat: Some(ms),
            kap: None,
        })
    }

    // ---- node lists ------------------------------------------------------

    fn node_list(
        self,
        kind: NodeListType,
        ring: Option<RingId>,
        quorate: Option<Quorate>,
        list: Vec<qnetd::proto::NodeInfo>,
        heuristics: Option<Heuristics>,
        config_version: Option<u64>,
    ) -> Self {
        self.send(Req::NodeList {
            kind: Some(kind),
            ring,
            config_version,
            quorate,
            nodes: list,
            heuristics,
        })
    }

    /// Initial config list.
    pub(crate) fn config(self, ids: &[u32]) -> Self {
        self.node_list(
            NodeListType::InitialConfig,
            None,
            None,
            nodes(ids),
            None,
            None,
        )
    }

    /// Initial config list with a config version.
    pub(crate) fn config_version(self, ids: &[u32], version: u64) -> Self {
        self.node_list(
            NodeListType::InitialConfig,
            None,
            None,
            nodes(ids),
            None,
            Some(version),
        )
    }

    /// Changed config list.
    pub(crate) fn changed_config(self, ids: &[u32]) -> Self {
        self.node_list(
            NodeListType::ChangedConfig,
            None,
            None,
            nodes(ids),
            None,
            None,
        )
    }

    /// Membership list with the client's default heuristics.
    pub(crate) fn membership(mut self, r: RingId, ids: &[u32]) -> Self {
        let h = self.spec().heuristics;
        self.membership_h(r, ids, h)
    }

    /// Membership list with explicit heuristics (`None` = undefined).
    pub(crate) fn membership_h(mut self, r: RingId, ids: &[u32], h: Option<Heuristics>) -> Self {
        self.spec().ring = r;
        self.node_list(NodeListType::Membership, Some(r), None, nodes(ids), h, None)
    }

    /// Quorum list: `ids` are members; quorate or not.
    pub(crate) fn quorum(self, quorate: bool, ids: &[u32]) -> Self {
        let q = if quorate {
            Quorate::Quorate
        } else {
            Quorate::Inquorate
        };
        self.node_list(
            NodeListType::Quorum,
            None,
            Some(q),
            nodes_with_state(ids, NodeState::Member),
            None,
            None,
        )
    }

    // ---- other requests --------------------------------------------------

    /// ECHO_REQUEST (echo counter).
    pub(crate) fn echo(self) -> Self {
        self.send(Req::Echo)
    }

    /// ASK_FOR_VOTE.
    pub(crate) fn ask_for_vote(self) -> Self {
        self.send(Req::AskForVote)
    }

    /// HEURISTICS_CHANGE.
    pub(crate) fn heuristics_change(self, h: Heuristics) -> Self {
        self.send(Req::HeuristicsChange(Some(h)))
    }

    /// VOTE_INFO_REPLY to the oldest unanswered VOTE_INFO (manual mode).
    pub(crate) fn vote_reply(self) -> Self {
        self.send_with(Req::VoteInfoReply, SeqMode::Auto, Wait::Quiet)
    }

    /// VOTE_INFO_REPLY with an arbitrary seq (early / old replies).
    pub(crate) fn vote_reply_seq(self, seq: u32) -> Self {
        self.send_with(Req::VoteInfoReply, SeqMode::Fixed(seq), Wait::Quiet)
    }

    /// Raw bytes that get one reply.
    pub(crate) fn raw(self, bytes: &[u8]) -> Self {
        self.send(Req::Raw(bytes.to_vec()))
    }

    /// Raw bytes with an explicit wait rule.
    pub(crate) fn raw_wait(self, bytes: &[u8], wait: Wait) -> Self {
        self.send_with(Req::Raw(bytes.to_vec()), SeqMode::Auto, wait)
    }

    /// Several requests written at once (pipelined, as the real client
    /// sends SET_OPTION and its node lists); waits for one answer each.
    pub(crate) fn pipelined(self, reqs: &[Req]) -> Self {
        self.send_with(
            Req::Batch(reqs.to_vec()),
            SeqMode::Auto,
            Wait::Replies(reqs.len()),
        )
    }

    // ---- expectations ----------------------------------------------------

    /// The client's current vote (latest ACK/NACK/ASK_LATER/WAIT_FOR_REPLY).
    pub(crate) fn expect_vote(self, v: Vote) -> Self {
        self.step(Action::Expect(Expect::Vote(v)))
    }

    /// The latest message's vote, NO_CHANGE included.
    pub(crate) fn expect_reply_vote(self, v: Vote) -> Self {
        self.step(Action::Expect(Expect::ReplyVote(v)))
    }

    /// The latest message carries this error code.
    pub(crate) fn expect_error(self, code: ReplyErrorCode) -> Self {
        self.step(Action::Expect(Expect::Error(code)))
    }

    /// The latest message has this type.
    pub(crate) fn expect_type(self, t: MsgType) -> Self {
        self.step(Action::Expect(Expect::LastType(t)))
    }

    /// The server has closed the connection.
    pub(crate) fn expect_closed(self) -> Self {
        self.step(Action::Expect(Expect::Closed))
    }

    /// The server sent this client nothing during the previous step.
    pub(crate) fn expect_silent(self) -> Self {
        self.step(Action::Expect(Expect::Silent))
    }
}
