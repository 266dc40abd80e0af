//! The sans-IO MQTT session and the discovery model against a real
//! Mosquitto broker (Debian's `mosquitto`, started here on a free loopback
//! port with a password file), through a minimal blocking shell over a std
//! `TcpStream`. Checked with `mosquitto_sub`: the retained discovery
//! configs and states arrive, a wrong password is refused, the last will
//! marks qnetd offline, and after the broker is killed and restarted
//! (without persistence, so it forgot everything) the session reconnects
//! and publishes everything again.
//!
//! Skipped honestly ([`crate::support::skip`]) when `mosquitto` is not
//! installed. [`Broker`] is shared with the daemon's MQTT tests
//! (`mqtt_daemon`).

#![allow(
    clippy::disallowed_methods,
    reason = "a test shell reads the wall clock, like the daemon's shell"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::{Scratch, free_ports};
use crate::support::skip;

use qnetd::mgmt::json::Report;
use qnetd::mqtt::discovery::{Discovery, DiscoveryConfig};
use qnetd::mqtt::session::{CloseReason, Event, Session, SessionConfig, client_id};

/// The broker's login of the tests.
pub(crate) const USER: &str = "qnetd";
/// Its password (with characters a URL must escape).
pub(crate) const PASSWORD: &str = "s3cret:@/%";

/// A Mosquitto process on 127.0.0.1:`port`, killed on drop.
pub(crate) struct Broker {
    child: Child,
    pub(crate) port: u16,
}

impl Broker {
    /// Starts `mosquitto` with the password file of [`setup`] in `dir`.
    pub(crate) fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, "")
    }

    /// [`Broker::start`] with more configuration lines (e.g. a second,
    /// TLS listener).
    pub(crate) fn start_with(dir: &Path, port: u16, extra: &str) -> Self {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "allow_anonymous false\npassword_file {}\npersistence false\nlog_dest stderr\nlistener {port} 127.0.0.1\n{extra}",
                dir.join("passwd").display()
            ),
        )
        .unwrap();
        let child = Command::new(skip::program("mosquitto").expect("checked by setup"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    /// SIGKILL, as a crash: no clean shutdown.
    pub(crate) fn kill(self) {
        drop(self);
    }

    /// Retained messages under `filter` as `topic payload` lines.
    pub(crate) fn retained(&self, filter: &str) -> Vec<String> {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", USER, "-P", PASSWORD])
            .args(["-v", "--retained-only", "-W", "1", "-t", filter])
            .output()
            .expect("run mosquitto_sub");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's shell: one `TcpStream`, the session's events acted upon.
struct Shell {
    session: Session,
    stream: Option<TcpStream>,
    port: u16,
    closes: Vec<CloseReason>,
    onlines: usize,
}

impl Shell {
    fn new(cfg: SessionConfig, port: u16) -> Self {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let jitter = Box::new(move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        });
        Self {
            session: Session::new(cfg, jitter, Instant::now()),
            stream: None,
            port,
            closes: Vec::new(),
            onlines: 0,
        }
    }

    /// One round: events, writes, reads (up to 20 ms), timers.
    fn step(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connect => match TcpStream::connect(("127.0.0.1", self.port)) {
                    Ok(s) => {
                        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                        self.stream = Some(s);
                        self.session.connected(Instant::now());
                    }
                    Err(_) => self.session.connection_lost(Instant::now()),
                },
                Event::Online => self.onlines += 1,
                Event::Closed { reason, .. } => {
                    self.stream = None;
                    self.closes.push(reason);
                }
                // No survey is configured here.
                Event::Surveyed { .. } | Event::SurveyRefused => {}
            }
        }
        let now = Instant::now();
        if let Some(stream) = &mut self.stream {
            if let Some(out) = self.session.poll_transmit(now) {
                let n = out.len();
                if stream.write_all(out).is_err() {
                    self.session.connection_lost(now);
                    return;
                }
                self.session.advance_transmit(n);
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => self.session.connection_lost(Instant::now()),
                Ok(n) => self.session.handle_input(&buf[..n], Instant::now()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => self.session.connection_lost(Instant::now()),
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        let now = Instant::now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
    }

    /// Steps until `done` holds; panics after `secs`.
    fn run_until(&mut self, secs: u64, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; closes: {:?}",
                self.closes
            );
            self.step();
        }
    }

    /// Steps for `ms` (lets queued bytes and PUBACKs flow).
    fn run_for(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < deadline {
            self.step();
        }
    }
}

fn session_config(password: &str) -> SessionConfig {
    let dcfg = DiscoveryConfig::default();
    let mut cfg = SessionConfig::new(client_id(&dcfg.topic_prefix), dcfg.availability_topic());
    cfg.login = Some((USER.into(), password.into()));
    cfg.backoff_min = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(800);
    cfg.keep_alive = Duration::from_secs(5);
    cfg
}

/// A status report with one cluster of two nodes, node 1 holding the vote.
fn report() -> Report {
    let node = |id: u32, vote: &str| {
        serde_json::json!({
            "node_id": id, "address": "127.0.0.1:5000",
            "tls": {"active": true, "client_certificate_verified": true},
            "heartbeat_interval_ms": 8000, "ring_id": {"node_id": 1, "seq": 4},
            "config_version": null, "config_node_list": [], "membership_node_list": [],
            "quorum_node_list": [], "quorate": null,
            "heuristics": {"current": "undefined", "membership": "undefined", "regular": "undefined"},
            "keep_active_partition_tie_breaker": false,
            "last_vote": vote, "last_ack_nack_vote": vote,
        })
    };
    serde_json::from_value(serde_json::json!({
        "schema_version": 1,
        "server": {"version": "0.1.0", "address": "*", "port": 5403, "tls": "supported",
                   "client_cert_required": true, "max_clients": null, "max_send_size": 32768,
                   "max_receive_size": 32768, "connected_clients": 2, "connected_clusters": 1},
        "clusters": [{"name": "pve-lab", "algorithm": "ffsplit", "kap_tie_breaker": false,
                      "tie_breaker": {"mode": "lowest", "node_id": null},
                      "nodes": [node(1, "ack"), node(2, "nack")]}],
    }))
    .unwrap()
}

/// A scratch directory with the broker's password file, or `None` (the
/// skip recorded) when Mosquitto is not installed.
pub(crate) fn setup() -> Option<Scratch> {
    if !skip::require_programs(&[
        ("mosquitto", "mosquitto"),
        ("mosquitto_passwd", "mosquitto"),
        ("mosquitto_sub", "mosquitto-clients"),
    ]) {
        return None;
    }
    let dir = Scratch::new("mqtt");
    let passwd = dir.path("passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args([USER, PASSWORD])
        .status()
        .expect("run mosquitto_passwd");
    assert!(status.success());
    Some(dir)
}

#[test]
fn discovery_reaches_a_real_broker_and_survives_its_restart() {
    let Some(dir) = setup() else { return };
    let port = free_ports(1)[0];
    let broker = Broker::start(&dir, port);

    let mut discovery = Discovery::new(DiscoveryConfig::default());
    let mut shell = Shell::new(session_config(PASSWORD), port);
    let now = Instant::now();
    for m in discovery.update(&report(), now) {
        shell
            .session
            .publish(&m.topic, &m.payload, m.retain, now)
            .unwrap();
    }
    shell.run_until(10, "online", |s| s.onlines == 1);
    shell.run_for(300);

    let configs = broker.retained("homeassistant/#");
    // Server 4 sensors; cluster has_vote, votes, vote event; 4 per node.
    assert_eq!(configs.len(), 4 + 3 + 2 * 4, "{configs:#?}");
    let vote_config = configs
        .iter()
        .find(|l| l.contains("_node1_vote/config "))
        .expect("node 1 vote config");
    let (_, json) = vote_config.split_once(' ').unwrap();
    let config: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(config["availability_topic"], "qnetd/status");
    let state_topic = config["state_topic"].as_str().unwrap().to_string();
    let states = broker.retained("qnetd/#");
    assert!(
        states.contains(&format!("{state_topic} ACK")),
        "{states:#?}"
    );
    assert!(
        states.contains(&"qnetd/status online".to_string()),
        "{states:#?}"
    );

    // Killed and restarted without persistence: the broker forgot it all.
    broker.kill();
    shell.run_until(10, "the loss of the broker", |s| !s.closes.is_empty());
    let broker = Broker::start(&dir, port);
    assert!(broker.retained("homeassistant/#").is_empty());
    shell.run_until(20, "a reconnect", |s| s.onlines == 2);
    shell.run_for(300);
    assert_eq!(
        broker.retained("homeassistant/#"),
        configs,
        "configs republished"
    );
    assert!(
        broker
            .retained("qnetd/#")
            .contains(&format!("{state_topic} ACK"))
    );

    // A state change after the reconnect goes out once.
    let mut changed = report();
    changed.clusters[0].nodes[0].last_vote = Some(qnetd::mgmt::json::VoteName::Nack);
    changed.clusters[0].nodes[0].last_ack_nack_vote = Some(qnetd::mgmt::json::VoteName::Nack);
    let now = Instant::now();
    for m in discovery.update(&changed, now) {
        shell
            .session
            .publish(&m.topic, &m.payload, m.retain, now)
            .unwrap();
    }
    shell.run_for(300);
    let states = broker.retained("qnetd/#");
    assert!(
        states.contains(&format!("{state_topic} NACK")),
        "{states:#?}"
    );
    assert!(
        states.iter().any(|l| l.ends_with("/has_vote OFF")),
        "{states:#?}"
    );

    // The connection dies without DISCONNECT: the broker publishes the will.
    shell.stream = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker
        .retained("qnetd/status")
        .contains(&"qnetd/status offline".to_string())
    {
        assert!(Instant::now() < deadline, "no last will");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wrong_password_is_refused_and_retried() {
    let Some(dir) = setup() else { return };
    let port = free_ports(1)[0];
    let _broker = Broker::start(&dir, port);
    let mut shell = Shell::new(session_config("wrong"), port);
    shell.run_until(10, "two refusals", |s| s.closes.len() >= 2);
    assert_eq!(shell.onlines, 0);
    for reason in &shell.closes {
        // Mosquitto 2 answers a bad password with "not authorized" (5).
        assert!(matches!(reason, CloseReason::Refused(4 | 5)), "{reason:?}");
    }
}
