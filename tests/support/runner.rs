//! Runs a [`Scenario`] against a server process and compares two runs.
//!
//! * [`Server::start`] starts a server on a free loopback port with a
//!   private lock file and IPC socket in a per-run temporary directory, so
//!   scenarios can run in parallel.
//! * [`execute`] plays the steps. After each client action it waits for the
//!   server's direct answer (if the request has one) and then until every
//!   client has been quiet for [`quiet`] (default 60 ms): messages from
//!   different clients race inside the server, so a step only ends when the
//!   server has nothing more to say. Every received message is attributed
//!   to the step during which it arrived.
//! * [`compare`] checks, per client, that both runs received the same
//!   messages in the same order and in the same steps (decoded and compared
//!   field by field; ECHO_REPLY and undecodable messages byte by byte), and
//!   renders a side-by-side table when they do not.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a network test driver reads the real clock"
)]

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qnetd::proto::{Msg, MsgType, Vote};

use super::qclient::{Client, Event, EventKind, Req, Shared, describe};
use super::scenario::{Action, Expect, Scenario, Step, Wait};

mod compare;
#[allow(
    unused_imports,
    reason = "each test binary uses a different part of the support code"
)]
pub(crate) use compare::{Comparison, compare, describe_step, same_message};

/// How long every client must have been quiet before a step ends
/// (`QNETD_DIFF_QUIET_MS`, default 60).
pub(crate) fn quiet() -> Duration {
    let ms = std::env::var("QNETD_DIFF_QUIET_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_millis(ms)
}

/// Longest wait for a direct reply.
const REPLY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Longest settle phase of one step.
const SETTLE_MAX: Duration = Duration::from_millis(3000);

/// A server implementation under test.
#[derive(Debug, Clone)]
pub(crate) struct ServerSpec {
    /// Short name for reports (`reference`, `ours`).
    pub name: String,
    /// Program to run.
    pub program: PathBuf,
}

/// A running server process; killed and cleaned up on drop.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// Its TCP address.
    pub addr: SocketAddr,
    dir: PathBuf,
}

static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether the socket listening on 127.0.0.1:`port` belongs to process
/// `pid` (Linux `/proc`); `None` when that cannot be told.
fn listener_owned_by(pid: u32, port: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|s| (*s).to_string()))
            .flatten()
    })?;
    let want = format!("socket:[{inode}]");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == want)),
    )
}

impl Server {
    /// Starts `spec` (ours and the reference get the same arguments: see
    /// [`super::Launch`], plus `-d -s off`) with extra `-S` settings, and
    /// waits until it accepts connections on TCP. (This suite probes TCP,
    /// not the management socket, and checks the listener is the child's.)
    ///
    /// # Errors
    /// A description (with the server's output) if it does not come up.
    pub(crate) fn start(
        spec: &ServerSpec,
        extra: &[String],
        settings: &[String],
        tag: &str,
    ) -> Result<Self, String> {
        let n = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
        // Short: the IPC socket path must fit in sun_path (108 bytes).
        let dir = std::env::temp_dir().join(format!(
            "qnetd-diff-{}-{n}-{}",
            std::process::id(),
            if spec.name == "reference" {
                "ref"
            } else {
                "our"
            }
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir {}: {e}", dir.display()))?;
        let _ = std::fs::write(dir.join("scenario"), tag);
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = super::server::free_ports(1)[0];
            let log = File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
            let log2 = log.try_clone().map_err(|e| e.to_string())?;
            // Our `-m` default differs from the reference's 0 (an intended
            // difference, see the README): both get ours unless a scenario
            // sets its own.
            let max_clients = qnetd::config::DEFAULT_MAX_CLIENTS.to_string();
            let mut child = super::Launch::program(&spec.program, &dir, "qnetd")
                .args(&["-d", "-s", "off", "-m", &max_clients])
                .args(&extra.iter().map(String::as_str).collect::<Vec<_>>())
                .settings(&settings.join(","))
                .command(port)
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", spec.program.display()))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!(
                        "{} exited with {status} before accepting connections; output:\n{}",
                        spec.program.display(),
                        read_log(&dir)
                    );
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    if listener_owned_by(child.id(), port) == Some(false) {
                        // Somebody else's server answered on that port.
                        let _ = child.kill();
                        let _ = child.wait();
                        last_err = format!("port {port} taken by another process");
                        break;
                    }
                    // Let the server see the probe's close before the
                    // scenario starts (it counts towards `-m`).
                    std::thread::sleep(Duration::from_millis(30));
                    return Ok(Self { child, addr, dir });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!(
                        "{} did not accept connections on {addr} within 10 s; output:\n{}",
                        spec.program.display(),
                        read_log(&dir)
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_err)
    }

    /// The server's output so far.
    pub(crate) fn log(&self) -> String {
        read_log(&self.dir)
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("QNETD_DIFF_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Everything one run produced.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Which server.
    pub server: String,
    /// The event log.
    pub events: Vec<Event>,
    /// Per step: the bytes sent by the script step (if any).
    pub sent: Vec<Option<Vec<u8>>>,
    /// Remarks per step (timeouts).
    pub notes: Vec<(usize, String)>,
    /// Expectations that did not hold: (step, text).
    pub failed_expectations: Vec<(usize, String)>,
    /// The server's output.
    pub server_log: String,
}

fn server_msgs_of(events: &[Event], client: usize) -> impl Iterator<Item = &Event> {
    events
        .iter()
        .filter(move |e| e.client == client && e.kind.is_from_server())
}

fn is_vote_info(bytes: &[u8]) -> bool {
    bytes.get(..2) == Some(&[0, 14])
}

/// Number of direct answers (non-VOTE_INFO messages, or a close) a client
/// has received.
fn answers(events: &[Event], client: usize) -> usize {
    server_msgs_of(events, client)
        .filter(|e| match &e.kind {
            EventKind::Recv(b) => !is_vote_info(b),
            _ => true,
        })
        .count()
}

fn vote_infos(events: &[Event], client: usize) -> usize {
    server_msgs_of(events, client)
        .filter(|e| matches!(&e.kind, EventKind::Recv(b) if is_vote_info(b)))
        .count()
}

fn closed(events: &[Event], client: usize) -> bool {
    server_msgs_of(events, client).any(|e| e.kind == EventKind::Closed)
}

/// Plays `scn` against a started server.
pub(crate) fn execute(scn: &Scenario, server: &Server, server_name: &str) -> Run {
    let shared = Shared::new();
    let n = scn.clients.len();
    let mut clients: Vec<Option<Client>> = (0..n).map(|_| None).collect();
    let mut auto = vec![true; n];
    let mut keepalive = vec![true; n];
    let mut run = Run {
        server: server_name.to_string(),
        events: Vec::new(),
        sent: vec![None; scn.steps.len()],
        notes: Vec::new(),
        failed_expectations: Vec::new(),
        server_log: String::new(),
    };
    let q = quiet();
    for (i, step) in scn.steps.iter().enumerate() {
        shared.set_step(i);
        let ci = step.client;
        let connect = |clients: &mut Vec<Option<Client>>, c: usize, ka: bool, auto: bool| {
            if clients[c].is_none() {
                match Client::connect(c, server.addr, Arc::clone(&shared), ka, auto) {
                    Ok(cl) => clients[c] = Some(cl),
                    Err(e) => panic!("{}: client {c} cannot connect: {e}", scn.name),
                }
            }
        };
        match &step.action {
            Action::Connect => {
                let c = ci.expect("connect needs a client");
                if let Some(old) = clients[c].take() {
                    old.disconnect();
                    shared.record(c, EventKind::Disconnected);
                }
                let t0 = Instant::now();
                connect(&mut clients, c, keepalive[c], auto[c]);
                // A refused connection (`-m`) is closed at once.
                shared.wait_quiet(t0, q, SETTLE_MAX);
            }
            Action::Send { req, seq, wait } => {
                let c = ci.expect("send needs a client");
                connect(&mut clients, c, keepalive[c], auto[c]);
                let client = clients[c].as_ref().expect("connected");
                let before = answers(&shared.snapshot(), c);
                let t0 = Instant::now();
                run.sent[i] = Some(client.send(req, *seq));
                let ok = match *wait {
                    Wait::Reply => shared.wait_until(REPLY_TIMEOUT, |ev| answers(ev, c) > before),
                    Wait::Closed => shared.wait_until(REPLY_TIMEOUT, |ev| closed(ev, c)),
                    Wait::Replies(n) => shared.wait_until(REPLY_TIMEOUT, |ev| {
                        answers(ev, c) >= before + n || closed(ev, c)
                    }),
                    Wait::Quiet => true,
                };
                if !ok {
                    run.notes
                        .push((i, format!("no {:?} within {REPLY_TIMEOUT:?}", wait)));
                }
                shared.wait_quiet(t0, q, SETTLE_MAX);
            }
            Action::Disconnect => {
                let c = ci.expect("disconnect needs a client");
                if let Some(cl) = clients[c].take() {
                    cl.disconnect();
                    shared.record(c, EventKind::Disconnected);
                }
                shared.wait_quiet(Instant::now(), q, SETTLE_MAX);
            }
            Action::AutoVoteReply(on) => {
                let c = ci.expect("client");
                auto[c] = *on;
                if let Some(cl) = &clients[c] {
                    cl.set_auto_vote_reply(*on);
                }
            }
            Action::Keepalive(on) => {
                let c = ci.expect("client");
                keepalive[c] = *on;
                if let Some(cl) = &clients[c] {
                    cl.set_keepalive(*on);
                }
            }
            Action::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                shared.wait_quiet(Instant::now(), q, SETTLE_MAX);
            }
            Action::WaitVoteInfos(list, ms) => {
                let ev = shared.snapshot();
                let before: Vec<usize> = list.iter().map(|&c| vote_infos(&ev, c)).collect();
                let ok = shared.wait_until(Duration::from_millis(*ms), |ev| {
                    list.iter()
                        .zip(&before)
                        .all(|(&c, &b)| vote_infos(ev, c) > b)
                });
                if !ok {
                    run.notes
                        .push((i, format!("not every VOTE_INFO arrived within {ms} ms")));
                }
                shared.wait_quiet(Instant::now(), q, SETTLE_MAX);
            }
            Action::WaitClosed(ms) => {
                let c = ci.expect("client");
                let ok = shared.wait_until(Duration::from_millis(*ms), |ev| closed(ev, c));
                if !ok {
                    run.notes
                        .push((i, format!("connection not closed within {ms} ms")));
                }
                shared.wait_quiet(Instant::now(), q, SETTLE_MAX);
            }
            Action::Ipc(command) => {
                let c = ci.expect("the ipc pseudo client");
                let reply = ipc_request(&server.dir.join("qnetd.sock"), command);
                let text = normalize_ipc(&reply, &shared.snapshot(), scn, server.addr.port());
                shared.record(c, EventKind::Ipc(text));
            }
            Action::Expect(what) => {
                let c = ci.expect("client");
                if let Err(why) = check_expect(&shared.snapshot(), c, i, what) {
                    run.failed_expectations.push((i, why));
                }
            }
        }
    }
    // What happens while the clients hang up is not part of the scenario
    // (the order in which they close is arbitrary): attribute it to no step.
    shared.set_step(usize::MAX);
    for c in clients.into_iter().flatten() {
        c.disconnect();
    }
    run.events = shared.snapshot();
    run.server_log = server.log();
    run
}

/// One request on the management socket, as `corosync-qnetd-tool` sends
/// it (`list verbose \n`); the whole reply, or a description of the
/// failure.
fn ipc_request(path: &Path, command: &str) -> String {
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;
    let mut sock = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => return format!("<cannot connect to the management socket: {e}>"),
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(3)));
    if let Err(e) = sock.write_all(format!("{command} \n").as_bytes()) {
        return format!("<cannot send to the management socket: {e}>");
    }
    let mut out = Vec::new();
    match sock.read_to_end(&mut out) {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => format!(
            "{}<read error: {e}>",
            String::from_utf8_lossy(&out).into_owned()
        ),
    }
}

/// Replaces `127.0.0.1:<port>` of each client connection by its label (and
/// the server's own port by `PORT`), so that the replies of two runs can be
/// compared.
fn normalize_ipc(text: &str, events: &[Event], scn: &Scenario, server_port: u16) -> String {
    let mut out = text.replace(&format!("127.0.0.1:{server_port}"), "127.0.0.1:PORT");
    for e in events.iter().rev() {
        if let EventKind::Connected(port) = e.kind {
            let from = format!("127.0.0.1:{port}");
            let to = format!("<{}>", scn.clients[e.client].label);
            // Whole tokens only: a port must not match inside a longer one.
            let mut result = String::with_capacity(out.len());
            let mut rest = out.as_str();
            while let Some(pos) = rest.find(&from) {
                let end = pos + from.len();
                let next_is_digit = rest[end..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit());
                result.push_str(&rest[..pos]);
                result.push_str(if next_is_digit { &from } else { &to });
                rest = &rest[end..];
            }
            result.push_str(rest);
            out = result;
        }
    }
    out
}

fn vote_of(bytes: &[u8]) -> Option<Vote> {
    Msg::parse(bytes).ok().and_then(|m| m.vote)
}

fn check_expect(events: &[Event], c: usize, step: usize, what: &Expect) -> Result<(), String> {
    let msgs: Vec<&Event> = server_msgs_of(events, c).collect();
    let last = msgs.last().map(|e| &e.kind);
    let last_bytes = match last {
        Some(EventKind::Recv(b)) => Some(b.as_slice()),
        _ => None,
    };
    let shown = last_bytes.map_or_else(|| format!("{last:?}"), describe);
    match what {
        Expect::Vote(v) => {
            let cur = msgs.iter().rev().find_map(|e| match &e.kind {
                EventKind::Recv(b) => vote_of(b).filter(|v| *v != Vote::NoChange),
                _ => None,
            });
            (cur == Some(*v))
                .then_some(())
                .ok_or_else(|| format!("expected vote {v}, current vote is {cur:?}"))
        }
        Expect::ReplyVote(v) => {
            let got = last_bytes.and_then(vote_of);
            (got == Some(*v))
                .then_some(())
                .ok_or_else(|| format!("expected the latest message to carry {v}, got {shown}"))
        }
        Expect::Error(code) => {
            let got = last_bytes
                .and_then(|b| Msg::parse(b).ok())
                .and_then(|m| m.reply_error_code);
            (got == Some(*code))
                .then_some(())
                .ok_or_else(|| format!("expected error {code}, latest message is {shown}"))
        }
        Expect::LastType(t) => {
            let got = last_bytes
                .and_then(|b| Msg::parse(b).ok())
                .map(|m| m.msg_type);
            (got == Some(*t))
                .then_some(())
                .ok_or_else(|| format!("expected a {t}, latest message is {shown}"))
        }
        Expect::Closed => closed(events, c)
            .then_some(())
            .ok_or_else(|| "expected the server to have closed the connection".to_string()),
        Expect::Silent => {
            let prev = step.checked_sub(1);
            let got: Vec<String> = msgs
                .iter()
                .filter(|e| Some(e.step) == prev)
                .map(|e| match &e.kind {
                    EventKind::Recv(b) => describe(b),
                    k => format!("{k:?}"),
                })
                .collect();
            got.is_empty()
                .then_some(())
                .ok_or_else(|| format!("expected nothing in the previous step, got {got:?}"))
        }
    }
}

/// The implementation compared against the reference: our binary, or with
/// `QNETD_DIFF_AGAINST=reference` the reference itself (to check that the
/// suite is deterministic).
pub(crate) fn ours_spec(reference: &Path) -> ServerSpec {
    match std::env::var("QNETD_DIFF_AGAINST").as_deref() {
        Ok("reference") => ServerSpec {
            name: "reference-again".into(),
            program: reference.to_path_buf(),
        },
        Ok(path) if !path.is_empty() && path != "ours" => ServerSpec {
            name: "ours".into(),
            program: PathBuf::from(path),
        },
        _ => ServerSpec {
            name: "ours".into(),
            program: PathBuf::from(env!("CARGO_BIN_EXE_qnetd")),
        },
    }
}

/// Starts a fresh server for `spec` and plays `scn` against it.
///
/// # Errors
/// The server did not start.
pub(crate) fn run_one(scn: &Scenario, spec: &ServerSpec) -> Result<Run, String> {
    let server = Server::start(spec, &scn.extra_args, &scn.settings, &scn.name)?;
    Ok(execute(scn, &server, &spec.name))
}

/// Judges two runs of `scn`: `Err` with the full report (failed scenario
/// expectations on the reference, and the side-by-side table) when the
/// reference does not do what the scenario claims or `ours` differs.
///
/// # Errors
/// The report.
pub(crate) fn verdict(scn: &Scenario, r: &Run, o: &Run) -> Result<Comparison, String> {
    let cmp = compare(scn, r, o);
    let mut report = String::new();
    if !r.failed_expectations.is_empty() {
        let _ = writeln!(
            report,
            "scenario {}: the REFERENCE does not behave as the scenario claims:",
            scn.name
        );
        for (s, why) in &r.failed_expectations {
            let _ = writeln!(report, "  step {s} ({}): {why}", describe_step(scn, r, *s));
        }
    }
    if !cmp.equal {
        let _ = writeln!(
            report,
            "scenario {}: {} differs from the reference in {} message(s):",
            scn.name,
            o.server,
            cmp.differences.len()
        );
        for (step, client, rs, os) in &cmp.differences {
            let _ = writeln!(report, "  step {step} {client}: expected {rs}, got {os}");
        }
    }
    if report.is_empty() {
        return Ok(cmp);
    }
    let _ = writeln!(report, "\n{}", cmp.table);
    let tail = |log: &str| {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let _ = writeln!(
        report,
        "--- {} server log (last 40 lines) ---\n{}",
        o.server,
        tail(&o.server_log)
    );
    if std::env::var_os("QNETD_DIFF_REF_LOG").is_some() {
        let _ = writeln!(
            report,
            "--- reference server log (last 40 lines) ---\n{}",
            tail(&r.server_log)
        );
    }
    Err(report)
}

/// The reference server, or `None` after recording the current test as
/// skipped (see [`super::skip`]).
pub(crate) fn reference_or_skip() -> Option<ServerSpec> {
    match super::skip::reference_server() {
        Some(program) => Some(ServerSpec {
            name: "reference".into(),
            program,
        }),
        None => {
            super::skip::skip(
                "the reference corosync-qnetd is not installed",
                super::skip::INSTALL_REFERENCE,
            );
            None
        }
    }
}

/// Runs `scn` against the reference and against ours, concurrently: the
/// reference's run and ours, or `None` after recording the test as skipped
/// when the reference is not installed. Panics if a server does not start.
fn run_both(scn: &Scenario) -> Option<(Run, Run)> {
    let ref_spec = reference_or_skip()?;
    let our_spec = ours_spec(&ref_spec.program);
    let (r, o) = std::thread::scope(|s| {
        let r = s.spawn(|| run_one(scn, &ref_spec));
        let o = s.spawn(|| run_one(scn, &our_spec));
        (
            r.join().expect("reference run panicked"),
            o.join().expect("our run panicked"),
        )
    });
    let r = r.unwrap_or_else(|e| panic!("{}: reference server: {e}", scn.name));
    let o = o.unwrap_or_else(|e| panic!("{}: {} server: {e}", scn.name, our_spec.name));
    Some((r, o))
}

/// Runs `scn` against the reference and against ours (concurrently) and
/// panics with the report of [`verdict`] if they differ, or if the
/// reference does not meet the scenario's own expectations.
///
/// Without the reference binary it records the test as skipped and
/// returns.
pub(crate) fn check(scn: &Scenario) {
    let Some((r, o)) = run_both(scn) else {
        return;
    };
    match verdict(scn, &r, &o) {
        Ok(cmp) => {
            if std::env::var_os("QNETD_DIFF_SHOW").is_some() {
                let _ = writeln!(std::io::stderr(), "{}\n{}", scn.name, cmp.table);
            }
        }
        Err(report) => panic!("{report}"),
    }
}

/// Runs `scn` as an **intended difference** from the reference: the
/// scenario's expectations describe *our* server, which must meet them, and
/// the reference must still behave differently (otherwise the record is
/// stale and should become a plain [`check`]). `reason` says why we differ;
/// it is printed with every failure.
///
/// Without the reference binary it records the test as skipped, like
/// [`check`].
pub(crate) fn check_intended_difference(scn: &Scenario, reason: &str) {
    let Some((r, o)) = run_both(scn) else {
        return;
    };
    let cmp = compare(scn, &r, &o);
    let mut report = String::new();
    for (step, why) in &o.failed_expectations {
        let _ = writeln!(
            report,
            "  step {step} ({}): {why}",
            describe_step(scn, &o, *step)
        );
    }
    if !report.is_empty() {
        panic!(
            "scenario {} (intended difference: {reason}): {} does not behave as the scenario claims:\n{report}\n{}",
            scn.name, o.server, cmp.table
        );
    }
    assert!(
        !cmp.equal,
        "scenario {} is recorded as an intended difference ({reason}), but the reference now \
         behaves the same; make it a plain check\n{}",
        scn.name, cmp.table
    );
    if std::env::var_os("QNETD_DIFF_SHOW").is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "{} (intended difference: {reason})\n{}",
            scn.name,
            cmp.table
        );
    }
}
