//! Replays every client message of the reference traces through our sans-IO
//! [`Instance`] and checks that each server message is byte-identical to
//! what the reference `corosync-qnetd` 3.0.3 sent, in the same order per
//! client. Time only moves when a traced reply can only come from a timer
//! (the lms algorithm timer).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::support::golden::{Dir, Scenario, Step, load};
use crate::support::wire::split_frames;
use qnetd::core::ClientId;
use qnetd::core::{Event, Instance, InstanceConfig, Timestamp};
use qnetd::proto::TlsSupported;

struct Replay {
    inst: Instance,
    now: Timestamp,
    clients: HashMap<String, ClientId>,
    inbox: HashMap<ClientId, VecDeque<Vec<u8>>>,
    port: u16,
}

impl Replay {
    fn new() -> Self {
        let cfg = InstanceConfig {
            tls: TlsSupported::Unsupported,
            ..InstanceConfig::default()
        };
        Self {
            inst: Instance::new(cfg),
            now: Timestamp::from_millis(1_000),
            clients: HashMap::new(),
            inbox: HashMap::new(),
            port: 40_000,
        }
    }

    fn client(&mut self, name: &str) -> ClientId {
        if let Some(id) = self.clients.get(name) {
            return *id;
        }
        self.port += 1;
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let id = self.inst.accept(self.now, addr).unwrap();
        self.clients.insert(name.to_string(), id);
        id
    }

    /// Moves everything the instance wants to send into per-client inboxes.
    fn drain(&mut self) {
        while let Some(ev) = self.inst.poll_event() {
            match ev {
                Event::Close(id) => self.inst.disconnect(self.now, id),
            }
        }
        while let Some(id) = self.inst.poll_transmit() {
            let bytes = self.inst.outgoing(id).to_vec();
            self.inst.consume_outgoing(id, bytes.len());
            let (frames, rest) = split_frames(&bytes);
            let inbox = self.inbox.entry(id).or_default();
            inbox.extend(frames.into_iter().map(<[u8]>::to_vec));
            assert!(rest.is_empty(), "partial message in output");
        }
    }

    fn feed(&mut self, name: &str, bytes: &[u8]) {
        let id = self.client(name);
        let consumed = self.inst.handle_input(self.now, id, bytes);
        assert_eq!(consumed.consumed, bytes.len());
        assert!(!consumed.start_tls);
        self.drain();
    }

    /// The next message for `name`, advancing time to the next timer if
    /// nothing is queued yet (bounded).
    fn next_for(&mut self, name: &str) -> Option<Vec<u8>> {
        let id = self.client(name);
        for _ in 0..8 {
            if let Some(m) = self.inbox.get_mut(&id).and_then(VecDeque::pop_front) {
                return Some(m);
            }
            let next = self.inst.poll_timeout()?;
            if next > self.now {
                self.now = next;
            }
            self.inst.handle_timeout(self.now);
            self.drain();
        }
        None
    }
}

/// How many messages of the standard handshake (PREINIT, INIT) an error
/// case assumes were sent before the traced ones: the captures show only
/// the messages under test.
fn handshake_prefix(name: &str) -> usize {
    let case = |range: std::ops::RangeInclusive<u32>| {
        range.into_iter().any(|n| name.contains(&format!("#{n} ")))
    };
    if case(16..=24) {
        2
    } else if case(5..=9) {
        1
    } else {
        0
    }
}

fn handshake_msgs(all: &[Scenario]) -> Vec<Vec<u8>> {
    let hs = all.iter().find(|s| s.name == "handshake").unwrap();
    hs.steps
        .iter()
        .filter_map(|s| match s {
            Step::Msg {
                dir: Dir::ToServer,
                bytes,
                ..
            } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

fn replay(sc: &Scenario, handshake: &[Vec<u8>]) -> usize {
    let mut r = Replay::new();
    let prefix = handshake_prefix(&sc.name);
    if prefix > 0 {
        for m in &handshake[..prefix] {
            r.feed("", m);
        }
        let id = r.client("");
        r.inbox.remove(&id);
    }
    let mut compared = 0;
    for (i, step) in sc.steps.iter().enumerate() {
        match step {
            Step::Note(note) => {
                if let Some(rest) = note.strip_prefix("--- phase 4: node ") {
                    let n = rest.split_whitespace().next().unwrap();
                    let id = r.client(&format!("n{n}"));
                    r.inst.disconnect(r.now, id);
                    r.drain();
                }
            }
            Step::Msg {
                client,
                dir: Dir::ToServer,
                bytes,
                ..
            } => r.feed(client, bytes),
            Step::Msg {
                client,
                dir: Dir::ToClient,
                name,
                bytes,
            } => {
                let got = r.next_for(client).unwrap_or_else(|| {
                    panic!(
                        "{}: step {i}: expected {name} for [{client}], got nothing",
                        sc.name
                    )
                });
                assert_eq!(
                    hex(&got),
                    hex(bytes),
                    "{}: step {i}: {name} for [{client}] differs from the reference",
                    sc.name
                );
                compared += 1;
            }
        }
    }
    compared
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn replies_are_byte_identical_to_the_reference() {
    let all = load();
    let handshake = handshake_msgs(&all);
    let mut total = 0;
    let mut scenarios = 0;
    for sc in &all {
        // TLS needs the shell; conflicts and kap4 are summaries without bytes
        // (covered by tests/engine/session.rs).
        if sc.name.contains("TLS") || sc.name == "conflicts" || sc.name.starts_with("kap4") {
            continue;
        }
        total += replay(sc, &handshake);
        scenarios += 1;
    }
    assert!(scenarios >= 30, "{scenarios} scenarios replayed");
    assert!(total >= 90, "only {total} server messages compared");
}
