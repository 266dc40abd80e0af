//! Comparing two runs: per client and per step, messages decoded and
//! compared field by field (ECHO_REPLY and undecodable ones byte by byte),
//! and the side-by-side table and step descriptions of the report.

use super::*;

/// Whether two received messages are the same: decoded and compared field
/// by field; ECHO_REPLY and anything undecodable byte by byte.
pub(crate) fn same_message(a: &[u8], b: &[u8]) -> bool {
    match (Msg::parse(a), Msg::parse(b)) {
        (Ok(ma), Ok(mb)) => {
            if ma.msg_type == MsgType::EchoReply || mb.msg_type == MsgType::EchoReply {
                a == b
            } else {
                ma == mb
            }
        }
        _ => a == b,
    }
}

fn same_event(a: &EventKind, b: &EventKind) -> bool {
    match (a, b) {
        (EventKind::Recv(x), EventKind::Recv(y)) => same_message(x, y),
        (x, y) => x == y,
    }
}

fn show(kind: &EventKind) -> String {
    match kind {
        EventKind::Recv(b) => describe(b),
        EventKind::Closed => "<connection closed by server>".to_string(),
        EventKind::Ipc(text) => format!("{text:?}"),
        other => format!("{other:?}"),
    }
}

/// A human description of a step, with the bytes the script sent.
pub(crate) fn describe_step(scn: &Scenario, run: &Run, i: usize) -> String {
    let step: &Step = &scn.steps[i];
    let who = step
        .client
        .map(|c| scn.clients[c].label.clone())
        .unwrap_or_default();
    let what = match &step.action {
        Action::Send { req, .. } => {
            let sent = run.sent[i]
                .as_deref()
                .map_or_else(String::new, describe_sent);
            match req {
                Req::Raw(_) | Req::RawChunked { .. } => format!("sends raw {sent}"),
                _ => format!("sends {sent}"),
            }
        }
        Action::Connect => "connects".into(),
        Action::Disconnect => "disconnects".into(),
        Action::AutoVoteReply(on) => format!("auto VOTE_INFO_REPLY {}", on_off(*on)),
        Action::Keepalive(on) => format!("keepalive {}", on_off(*on)),
        Action::Sleep(ms) => format!("sleep {ms} ms"),
        Action::WaitVoteInfos(list, _) => {
            let names: Vec<&str> = list
                .iter()
                .map(|&c| scn.clients[c].label.as_str())
                .collect();
            format!("wait for VOTE_INFO to {}", names.join(", "))
        }
        Action::WaitClosed(_) => "wait until the server closes the connection".into(),
        Action::Expect(e) => format!("expect {e:?}"),
        Action::Ipc(cmd) => format!("asks the management socket: {cmd:?}"),
    };
    if who.is_empty() {
        what
    } else {
        format!("{who} {what}")
    }
}

/// Describes what a step wrote: one or more messages (pipelined writes),
/// or raw bytes that do not frame.
fn describe_sent(bytes: &[u8]) -> String {
    let (frames, rest) = super::super::wire::split_frames(bytes);
    let mut parts = Vec::new();
    for frame in frames {
        let n = frame.len();
        if n > 4096 {
            let ty = u16::from_be_bytes([frame[0], frame[1]]);
            parts.push(format!(
                "{} ({n} bytes)",
                super::super::qclient::msg_type_name(MsgType::from(ty))
            ));
        } else {
            parts.push(describe(frame));
        }
    }
    if !rest.is_empty() {
        let head: String = rest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        parts.push(format!("{} unframed bytes {head}", rest.len()));
    }
    parts.join(" + ")
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Management replies are compared line by line (one row each).
fn lines_of(events: Vec<EventKind>) -> Vec<EventKind> {
    events
        .into_iter()
        .flat_map(|e| match e {
            EventKind::Ipc(text) => text
                .split_inclusive('\n')
                .map(|l| EventKind::Ipc(l.to_string()))
                .collect(),
            other => vec![other],
        })
        .collect()
}

/// The outcome of comparing two runs.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    /// Whether every client got the same messages in the same steps.
    pub equal: bool,
    /// Rows that differ: (step, client label, reference, ours).
    pub differences: Vec<(usize, String, String, String)>,
    /// The side-by-side table.
    pub table: String,
}

/// Compares `ours` against `reference`, per client and per step.
pub(crate) fn compare(scn: &Scenario, reference: &Run, ours: &Run) -> Comparison {
    let mut table = String::new();
    let mut differences = Vec::new();
    let left_w = 52;
    let (ref_head, our_head) = (
        format!("reference ({})", reference.server),
        format!("ours ({})", ours.server),
    );
    let _ = writeln!(
        table,
        "{:>4}  {:<8} {ref_head:<left_w$} | {our_head}",
        "step", "client"
    );
    let _ = writeln!(table, "{}", "-".repeat(4 + 2 + 9 + left_w + 3 + left_w));
    for i in 0..scn.steps.len() {
        let mut rows = String::new();
        for (c, spec) in scn.clients.iter().enumerate() {
            let pick = |run: &Run| -> Vec<EventKind> {
                server_msgs_of(&run.events, c)
                    .filter(|e| e.step == i)
                    .map(|e| e.kind.clone())
                    .collect()
            };
            let (r, o) = (lines_of(pick(reference)), lines_of(pick(ours)));
            for k in 0..r.len().max(o.len()) {
                let (rs, os) = (
                    r.get(k).map_or_else(|| "-".to_string(), show),
                    o.get(k).map_or_else(|| "-".to_string(), show),
                );
                let same = matches!((r.get(k), o.get(k)), (Some(a), Some(b)) if same_event(a, b));
                if !same {
                    differences.push((i, spec.label.clone(), rs.clone(), os.clone()));
                }
                let mark = if same { "" } else { "   <<< DIFFERS" };
                let _ = writeln!(
                    rows,
                    "{:>4}  {:<8} {:<left_w$} | {os}{mark}",
                    "", spec.label, rs
                );
            }
        }
        let trivial = matches!(
            scn.steps[i].action,
            Action::Expect(_) | Action::AutoVoteReply(_) | Action::Keepalive(_)
        );
        if rows.is_empty() && trivial {
            continue;
        }
        let _ = writeln!(table, "{i:>4}  {}", describe_step(scn, reference, i));
        for run in [reference, ours] {
            for (s, note) in &run.notes {
                if *s == i {
                    let _ = writeln!(table, "{:>4}  ({}: {note})", "", run.server);
                }
            }
            for (s, why) in &run.failed_expectations {
                if *s == i {
                    let _ = writeln!(
                        table,
                        "{:>4}  ({}: expectation failed: {why})",
                        "", run.server
                    );
                }
            }
        }
        table.push_str(&rows);
    }
    Comparison {
        equal: differences.is_empty(),
        differences,
        table,
    }
}
