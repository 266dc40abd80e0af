//! One-line human descriptions of wire messages, for the reports.

use super::*;

/// A compact one-line description of a message: its type and every option
/// that is set (`VOTE_INFO seq=2 vote=NACK ring=2.c`).
pub(crate) fn describe(bytes: &[u8]) -> String {
    let Ok(m) = Msg::parse(bytes) else {
        let head: String = bytes.iter().take(24).map(|b| format!("{b:02x}")).collect();
        let more = if bytes.len() > 24 { "…" } else { "" };
        return format!("undecodable {} bytes {head}{more}", bytes.len());
    };
    let mut s = msg_type_name(m.msg_type);
    let mut add = |k: &str, v: String| {
        s.push(' ');
        s.push_str(k);
        s.push('=');
        s.push_str(&v);
    };
    if let Some(v) = m.seq {
        add("seq", v.to_string());
    }
    if let Some(v) = m.reply_error_code {
        add("err", format!("{}({})", short_err(v), u16::from(v)));
    }
    if let Some(v) = m.node_list_type {
        add("list", v.as_str().replace(' ', "_"));
    }
    if let Some(v) = m.vote {
        add("vote", vote_name(v.into()));
    }
    if let Some(v) = m.ring_id {
        add("ring", v.to_string());
    }
    if let Some(v) = m.heuristics {
        add("heur", v.as_str().to_string());
    }
    if let Some(v) = m.cluster_name {
        add("cluster", String::from_utf8_lossy(v).into_owned());
    }
    if let Some(v) = m.tls_supported {
        add("tls", u8::from(v).to_string());
    }
    if let Some(v) = m.tls_client_cert_required {
        add("cert_req", v.to_string());
    }
    if let Some(v) = m.node_id {
        add("node", v.to_string());
    }
    if let Some(v) = m.decision_algorithm {
        add("algo", u16::from(v).to_string());
    }
    if let Some(v) = m.heartbeat_interval {
        add("hb", v.to_string());
    }
    if let Some(v) = m.tie_breaker {
        add("tb", format!("{}/{}", u8::from(v.mode), v.node_id));
    }
    if let Some(v) = m.keep_active_partition_tie_breaker {
        add("kap", u8::from(v).to_string());
    }
    if let Some(v) = m.config_version {
        add("cfgver", v.to_string());
    }
    if let Some(v) = m.quorate {
        add("quorate", u8::from(v).to_string());
    }
    if !m.nodes.is_empty() {
        let list: Vec<String> = m.nodes.iter().map(|n| n.node_id.to_string()).collect();
        add("nodes", format!("[{}]", list.join(",")));
    }
    if let Some(v) = m.supported_messages {
        add("msgs", format!("{}", v.len()));
    }
    if let Some(v) = m.supported_options {
        add("opts", format!("{}", v.len()));
    }
    if let Some(v) = m.server_maximum_request_size {
        add("maxreq", v.to_string());
    }
    if let Some(v) = m.server_maximum_reply_size {
        add("maxrep", v.to_string());
    }
    if let Some(v) = m.supported_decision_algorithms {
        add("algos", format!("{:?}", v));
    }
    s
}

/// Upper-case wire name of a message type.
pub(crate) fn msg_type_name(t: MsgType) -> String {
    match t {
        MsgType::Unknown(v) => format!("TYPE_{v}"),
        t => t.as_str().to_uppercase().replace([' ', '-'], "_"),
    }
}

fn vote_name(v: u8) -> String {
    match v {
        1 => "ACK".into(),
        2 => "NACK".into(),
        3 => "ASK_LATER".into(),
        4 => "WAIT_FOR_REPLY".into(),
        5 => "NO_CHANGE".into(),
        other => format!("?{other}"),
    }
}

fn short_err(code: ReplyErrorCode) -> String {
    code.as_str().to_uppercase().replace([' ', '-', '\''], "_")
}
