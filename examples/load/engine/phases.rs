//! The measured phases: set-up, idle, closed-loop and fixed-rate echoes,
//! the split-and-heal storm and the sequential rounds, each a stretch of the
//! event loop with its own stop condition.

use super::*;

impl Engine {
    /// Connects and sets up every client not yet up, `concurrency` at a
    /// time. Returns the window and whether all clients got ready.
    pub(crate) fn setup(&mut self, concurrency: usize, timeout: Duration) -> (Window, bool) {
        self.concurrency = concurrency.max(1);
        self.queue = (0..self.clients.len())
            .filter(|&i| self.clients[i].st != St::Ready)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let s0 = self.sample();
        let t0 = Instant::now();
        let n = self.clients.len();
        let ok = self.run(t0 + timeout, &|e| e.ctx.stats.ready == n);
        let t1 = if ok {
            self.ctx.stats.last_ready.unwrap_or_else(Instant::now)
        } else {
            Instant::now()
        };
        let s1 = self.sample();
        if !ok {
            self.ctx.errors.protocol += 1;
            let mut states: Vec<(St, usize)> = Vec::new();
            for c in &self.clients {
                match states.iter_mut().find(|(st, _)| *st == c.st) {
                    Some((_, k)) => *k += 1,
                    None => states.push((c.st, 1)),
                }
            }
            self.ctx.errors.note(format!(
                "set-up: only {} of {n} clients ready after {timeout:?} (states: {states:?})",
                self.ctx.stats.ready
            ));
        }
        // Nothing left to connect: stop retrying.
        self.queue.clear();
        self.ctx.retry_heap.clear();
        self.ctx.setup_heap.clear();
        (Self::window(s0, s1, t0, t1), ok)
    }

    /// Waits until every client holds an ACK for its current ring and has no
    /// node list in flight.
    pub(crate) fn settle(&mut self, timeout: Duration) -> bool {
        let ok = self.run(Instant::now() + timeout, &|e| {
            e.clients.iter().all(|c| {
                c.st == St::Ready
                    && c.decision
                        == Some(Decision {
                            vote: Vote::Ack,
                            ring: c.ring,
                        })
                    && c.pending.iter().all(|p| matches!(p.req, Req::Echo(_)))
            })
        });
        if !ok {
            let bad =
                self.clients.iter().enumerate().find(|(_, c)| {
                    c.st != St::Ready || c.decision.map(|d| d.vote) != Some(Vote::Ack)
                });
            self.ctx.errors.protocol += 1;
            self.ctx.errors.note(format!(
                "clients did not settle on ACK within {timeout:?} (first: {:?})",
                bad.map(|(i, c)| (i, c.st, c.decision))
            ));
        }
        ok
    }

    /// Heartbeats only, for `d`.
    pub(crate) fn idle(&mut self, d: Duration) -> Window {
        self.ctx.mode = Mode::Idle;
        let s0 = self.sample();
        let t0 = Instant::now();
        self.run(t0 + d, &|_| false);
        let t1 = Instant::now();
        Self::window(s0, self.sample(), t0, t1)
    }

    /// Closed loop: every client keeps `depth` echoes outstanding for `d`.
    /// Returns the window and the replies received inside it.
    pub(crate) fn closed_loop(&mut self, d: Duration, depth: u32) -> (Window, u64) {
        self.ctx.mode = Mode::Closed;
        self.ctx.depth = depth.max(1);
        let s0 = self.sample();
        let t0 = Instant::now();
        let base = self.ctx.stats.load_replies;
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.st == St::Ready {
                for _ in 0..self.ctx.depth {
                    c.send_echo_now(i, Echo::Load, &mut self.ctx);
                }
            }
        }
        self.run(t0 + d, &|_| false);
        let t1 = Instant::now();
        let s1 = self.sample();
        let replies = self.ctx.stats.load_replies - base;
        self.ctx.mode = Mode::Idle;
        self.drain(|e| e.ctx.stats.load_out == 0, "closed-loop echoes");
        (Self::window(s0, s1, t0, t1), replies)
    }

    /// Fixed rate: `rate` echoes per second spread round-robin over the
    /// clients for `d`; latencies go to `ctx.hist` (microseconds).
    pub(crate) fn fixed_rate(&mut self, rate: u32, d: Duration) -> Window {
        self.ctx.mode = Mode::Rate;
        self.ctx.hist.reset();
        self.send_lag_max = Duration::ZERO;
        self.ready_list = (0..self.clients.len())
            .filter(|&i| self.clients[i].st == St::Ready)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let step = Duration::from_nanos(1_000_000_000 / u64::from(rate.max(1)));
        let s0 = self.sample();
        let t0 = Instant::now();
        self.rate_next = Some((t0, step, 0));
        self.run(t0 + d, &|_| false);
        self.rate_next = None;
        let t1 = Instant::now();
        let s1 = self.sample();
        self.drain(
            |e| e.ctx.stats.latency_replies == e.ctx.stats.latency_sent,
            "fixed-rate echoes",
        );
        self.ctx.mode = Mode::Idle;
        Self::window(s0, s1, t0, t1)
    }

    pub(super) fn drain(&mut self, done: impl Fn(&Self) -> bool, what: &str) {
        if !self.run(Instant::now() + Duration::from_secs(10), &done) {
            self.ctx.errors.protocol += 1;
            self.ctx
                .errors
                .note(format!("{what}: replies missing 10 s after the phase"));
        }
    }

    /// A vote storm: every cluster splits (each node sees only itself in a
    /// new ring) or heals, all at once.
    pub(crate) fn storm(&mut self, split: bool, timeout: Duration) -> Storm {
        self.ring_seq += 4;
        let seq = self.ring_seq;
        let mut expected = 0;
        for c in &mut self.clients {
            if c.st != St::Ready {
                continue;
            }
            c.solo = split;
            c.ring = RingId {
                node_id: if split { c.node_id } else { 1 },
                seq,
            };
            let vote = if split && c.node_id != 1 {
                Vote::Nack
            } else {
                Vote::Ack
            };
            c.expect = Some(Decision { vote, ring: c.ring });
            c.met = false;
            c.decision_at = None;
            expected += 1;
        }
        self.ctx.stats.storm_left = expected;
        self.ctx.stats.last_decision = None;
        let s0 = self.sample();
        let t0 = Instant::now();
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.st == St::Ready {
                c.send_change(i, &mut self.ctx);
            }
        }
        let sent = t0.elapsed();
        let ok = self.run(t0 + timeout, &|e| e.ctx.stats.storm_left == 0);
        let t1 = Instant::now();
        let s1 = self.sample();
        let mut times: Vec<Duration> = self
            .clients
            .iter()
            .filter_map(|c| c.decision_at.map(|t| t.saturating_duration_since(t0)))
            .collect();
        times.sort_unstable();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        if !ok {
            let missing: Vec<String> = self
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| c.expect.is_some() && !c.met)
                .take(5)
                .map(|(i, c)| format!("client {i} expected {:?} has {:?}", c.expect, c.decision))
                .collect();
            self.ctx.errors.protocol += 1;
            self.ctx.errors.note(format!(
                "vote storm ({}): {} decisions missing after {timeout:?}: {}",
                if split { "split" } else { "heal" },
                self.ctx.stats.storm_left,
                missing.join("; ")
            ));
        }
        for c in &mut self.clients {
            c.expect = None;
        }
        let last = ok.then(|| {
            self.ctx
                .stats
                .last_decision
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(t0))
        });
        // Let the node list replies of the change arrive.
        self.drain(
            |e| {
                e.clients
                    .iter()
                    .all(|c| c.pending.iter().all(|p| matches!(p.req, Req::Echo(_))))
            },
            "vote storm node list replies",
        );
        Storm {
            window: Self::window(s0, s1, t0, t1),
            last,
            median,
            sent,
        }
    }

    /// `k` rounds of heartbeat-like echoes (for callgrind): in each round
    /// every client sends one echo, one client at a time (the next client
    /// sends when the previous reply arrived), so that the server handles
    /// each echo alone, as it does idle heartbeats.
    pub(crate) fn rounds(&mut self, k: u32, timeout: Duration) -> (Window, bool) {
        self.ctx.mode = Mode::Rounds;
        self.ctx.stats.rounds_done = 0;
        self.ctx.round_list = (0..self.clients.len())
            .filter(|&i| self.clients[i].st == St::Ready)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let target = self.ctx.round_list.len() * k as usize;
        self.ctx.round_target = target;
        let s0 = self.sample();
        let t0 = Instant::now();
        self.ctx.baton = self.ctx.round_list.first().copied().filter(|_| target > 0);
        let ok = self.run(t0 + timeout, &|e| e.ctx.stats.rounds_done >= target);
        let t1 = Instant::now();
        self.ctx.mode = Mode::Idle;
        self.ctx.baton = None;
        if !ok {
            self.ctx.errors.protocol += 1;
            self.ctx.errors.note(format!(
                "rounds: {} of {target} echoes after {timeout:?}",
                self.ctx.stats.rounds_done
            ));
        }
        (Self::window(s0, self.sample(), t0, t1), ok)
    }

    /// Closes every connection (RST, so that no TIME_WAIT is left behind).
    pub(crate) fn close_all(&mut self) {
        for c in &mut self.clients {
            if let Some(s) = c.stream.take() {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            c.st = St::Idle;
        }
    }
}
