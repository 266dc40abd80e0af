//! The Home Assistant add-on's `config.yaml` in `addon/`, checked against the
//! rules the Supervisor and the add-on linter apply (`docs/apps/configuration.md`
//! of developers.home-assistant; `supervisor/apps/validate.py`), and against
//! our own options struct so the schema and [`qnetd::config::addon::Options`]
//! cannot drift; the security rating and the Ingress panel settings. The other
//! add-on files are checked in `addon_files`, the daemon's add-on mode in
//! `addon_mode`.
//!
//! YAML is read with `yaml-rust2` (pure Rust, YAML 1.2). The Supervisor
//! reads YAML 1.1 (PyYAML), where a bare `on`/`off`/`yes`/`no` is a
//! boolean: [`no_yaml11_booleans`] catches that difference.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value as Json;
use yaml_rust2::{Yaml, YamlLoader};

use qnetd::config::addon::{self, Options};

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub(crate) fn yaml(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap();
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

pub(crate) fn config() -> Yaml {
    yaml("addon/config.yaml")
}

/// A YAML scalar tree as JSON, as the Supervisor would write it.
fn to_json(y: &Yaml) -> Json {
    match y {
        Yaml::Real(s) => Json::from(s.parse::<f64>().unwrap()),
        Yaml::String(s) => Json::from(s.as_str()),
        Yaml::Integer(i) => Json::from(*i),
        Yaml::Boolean(b) => Json::from(*b),
        Yaml::Null => Json::Null,
        Yaml::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Json::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), to_json(v)))
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

pub(crate) fn keys(y: &Yaml) -> BTreeSet<String> {
    y.as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// Every key `config.yaml` may have (developers docs, 2026).
const KNOWN_KEYS: &[&str] = &[
    "name",
    "version",
    "slug",
    "description",
    "arch",
    "machine",
    "url",
    "startup",
    "boot",
    "ports",
    "ports_description",
    "host_network",
    "host_ipc",
    "host_dbus",
    "host_pid",
    "host_uts",
    "devices",
    "homeassistant",
    "hassio_role",
    "hassio_api",
    "homeassistant_api",
    "docker_api",
    "privileged",
    "full_access",
    "apparmor",
    "map",
    "environment",
    "audio",
    "video",
    "gpio",
    "usb",
    "uart",
    "udev",
    "devicetree",
    "kernel_modules",
    "stdin",
    "legacy",
    "options",
    "schema",
    "image",
    "codenotary",
    "timeout",
    "tmpfs",
    "discovery",
    "services",
    "auth_api",
    "ingress",
    "ingress_port",
    "ingress_entry",
    "ingress_stream",
    "panel_icon",
    "panel_title",
    "panel_admin",
    "webui",
    "init",
    "stage",
    "backup",
    "backup_pre",
    "backup_post",
    "backup_exclude",
    "advanced",
    "journald",
    "realtime",
    "breaking_versions",
    "ulimits",
    "watchdog",
];

#[test]
fn required_keys_and_formats() {
    let c = config();
    for key in ["name", "version", "slug", "description"] {
        let v = c[key].as_str().unwrap_or_else(|| panic!("{key}: a string"));
        assert!(!v.trim().is_empty(), "{key} is empty");
    }
    for key in keys(&c) {
        assert!(KNOWN_KEYS.contains(&key.as_str()), "unknown key {key}");
    }
    // Slug: URI-friendly (Supervisor RE_SLUG `[-_.A-Za-z0-9]+`), and ours.
    let slug = c["slug"].as_str().unwrap();
    assert_eq!(slug, "qnetd");
    assert!(
        slug.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    );
    // Version: a quoted string equal to the crate's, so the image tag matches.
    assert_eq!(c["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    // Arch: only what Home Assistant still supports (armv7/armhf/i386 are
    // deprecated since 2025.12).
    let arch: Vec<&str> = c["arch"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(arch, ["aarch64", "amd64"]);
}

#[test]
fn enums_and_booleans() {
    let c = config();
    let one_of = |key: &str, allowed: &[&str]| {
        if let Some(v) = c[key].as_str() {
            assert!(allowed.contains(&v), "{key}: {v} not in {allowed:?}");
        } else {
            assert!(c[key].is_badvalue(), "{key}: must be a string");
        }
    };
    one_of(
        "startup",
        &["initialize", "system", "services", "application", "once"],
    );
    one_of("boot", &["auto", "manual", "manual_only"]);
    one_of("backup", &["hot", "cold"]);
    one_of("stage", &["stable", "experimental", "deprecated"]);
    assert_eq!(c["startup"].as_str(), Some("services"));
    // Hot (the default, so left out): a cold backup stops qnetd and the
    // cluster loses its third vote.
    assert!(c["backup"].as_str().is_none_or(|b| b == "hot"));
    assert!(c["backup_pre"].is_badvalue() && c["backup_post"].is_badvalue());
    // init: false — our binary is PID 1 and handles SIGTERM itself.
    assert_eq!(c["init"].as_bool(), Some(false));
    // AppArmor on (the default): apparmor.txt is our profile.
    assert!(c["apparmor"].as_bool().is_none_or(|a| a));
}

/// The linter's defaults (frenck/action-addon-linter `config.schema.json`,
/// every property with a `default`): a key set to its default value fails
/// the lint ("should be removed, it uses a default value").
const LINTER_DEFAULTS: &[(&str, &str)] = &[
    ("advanced", "false"),
    ("apparmor", "true"),
    ("audio", "false"),
    ("auth_api", "false"),
    ("auto_uart", "false"),
    ("backup", "hot"),
    ("boot", "auto"),
    ("devicetree", "false"),
    ("docker_api", "false"),
    ("full_access", "false"),
    ("gpio", "false"),
    ("hassio_api", "false"),
    ("hassio_role", "default"),
    ("homeassistant_api", "false"),
    ("host_dbus", "false"),
    ("host_ipc", "false"),
    ("host_network", "false"),
    ("host_pid", "false"),
    ("host_uts", "false"),
    ("ingress", "false"),
    ("ingress_port", "8099"),
    ("ingress_stream", "false"),
    ("init", "true"),
    ("journald", "false"),
    ("kernel_modules", "false"),
    ("legacy", "false"),
    ("panel_admin", "true"),
    ("panel_icon", "mdi:puzzle"),
    ("realtime", "false"),
    ("stage", "stable"),
    ("startup", "application"),
    ("stdin", "false"),
    ("timeout", "10"),
    ("tmpfs", "false"),
    ("uart", "false"),
    ("udev", "false"),
    ("usb", "false"),
    ("video", "false"),
];

/// A scalar as the linter compares it (after PyYAML: `true`, `10`, `hot`).
fn scalar_text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn no_key_at_its_linter_default() {
    let c = config();
    for (key, default) in LINTER_DEFAULTS {
        if let Some(v) = scalar_text(&c[*key]) {
            assert_ne!(
                v, *default,
                "{key}: {v} is the default value; remove the key (the add-on linter rejects it)"
            );
        }
    }
    // Empty objects are the defaults of options, schema and ulimits.
    for key in ["options", "schema", "ulimits"] {
        assert!(
            c[key].as_hash().is_none_or(|h| !h.is_empty()),
            "{key}: {{}}"
        );
    }
}

/// The linter's `map` schema: either strings of a fixed set of folders
/// (`data` is not among them: `/data` is always mounted), or objects with a
/// required `type`, optional `read_only` (bool) and `path` (string).
#[test]
fn map_is_absent_or_in_object_form() {
    let c = config();
    let Some(map) = c["map"].as_vec() else {
        assert!(c["map"].is_badvalue(), "map: a list");
        return;
    };
    for m in map {
        let h = m
            .as_hash()
            .unwrap_or_else(|| panic!("map entry {m:?}: use the object form {{type: ...}}"));
        let ty = m["type"].as_str().expect("map entry: type");
        assert!(
            [
                "addon_config",
                "app_config",
                "addons",
                "local_apps",
                "all_addon_configs",
                "all_app_configs",
                "backup",
                "config",
                "data",
                "homeassistant_config",
                "media",
                "share",
                "ssl",
            ]
            .contains(&ty),
            "map type {ty}"
        );
        for k in h.keys() {
            assert!(matches!(k.as_str(), Some("type" | "read_only" | "path")));
        }
        assert!(m["read_only"].is_badvalue() || m["read_only"].as_bool().is_some());
    }
}

#[test]
fn least_privilege() {
    let c = config();
    // The linter rejects watchdog ("use the native Docker HEALTHCHECK").
    assert!(c["watchdog"].is_badvalue(), "no watchdog key");
    for key in [
        "hassio_api",
        "hassio_role",
        "homeassistant_api",
        "docker_api",
        "full_access",
        "privileged",
        "host_network",
        "host_pid",
        "host_ipc",
        "host_uts",
        "devices",
        "kernel_modules",
        "auth_api",
        "webui",
    ] {
        assert!(c[key].is_badvalue(), "{key} must not be set");
    }
    // /data is always mapped read-write; anything else must be justified.
    if let Some(map) = c["map"].as_vec() {
        for m in map {
            let name = m.as_str().or_else(|| m["type"].as_str()).unwrap();
            assert_eq!(name.split(':').next(), Some("data"), "map {name}");
        }
    }
}

#[test]
fn ports_are_tcp_5403() {
    let c = config();
    let ports = c["ports"].as_hash().unwrap();
    for (k, v) in ports {
        let k = k.as_str().unwrap();
        let (port, proto) = k.split_once('/').unwrap_or_else(|| panic!("{k}"));
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{k}");
        assert!(matches!(proto, "tcp" | "udp"), "{k}");
        match v {
            Yaml::Null => {}
            Yaml::Integer(p) => assert!((1..=65535).contains(p), "{k}: {p}"),
            other => panic!("{k}: host port {other:?}"),
        }
    }
    // QNetd is TCP; several published add-ons wrongly map UDP.
    assert_eq!(keys(&c["ports"]), BTreeSet::from(["5403/tcp".to_string()]));
    assert_eq!(c["ports"]["5403/tcp"].as_i64(), Some(5403));
}

/// One schema element, after the Supervisor's `RE_SCHEMA_ELEMENT`.
#[derive(Debug)]
enum SchemaType {
    Bool,
    Str,
    Int(Option<i64>, Option<i64>),
    List(Vec<String>),
    Other,
}

fn schema_type(s: &str) -> SchemaType {
    let s = s.strip_suffix('?').unwrap_or(s);
    let bounds = |inner: &str| -> (Option<i64>, Option<i64>) {
        let (lo, hi) = inner.split_once(',').unwrap_or_else(|| panic!("{s}"));
        let num = |t: &str| (!t.is_empty()).then(|| t.parse::<i64>().unwrap());
        (num(lo), num(hi))
    };
    match s {
        "bool" => SchemaType::Bool,
        "str" | "password" | "email" | "url" | "port" => SchemaType::Str,
        "int" => SchemaType::Int(None, None),
        _ if s.starts_with("int(") && s.ends_with(')') => {
            let (lo, hi) = bounds(&s[4..s.len() - 1]);
            SchemaType::Int(lo, hi)
        }
        _ if s.starts_with("list(") && s.ends_with(')') => {
            let items: Vec<String> = s[5..s.len() - 1].split('|').map(String::from).collect();
            assert!(items.iter().all(|i| !i.is_empty()), "{s}");
            SchemaType::List(items)
        }
        _ if (s.starts_with("str(") || s.starts_with("float(")) && s.ends_with(')')
            || s.starts_with("match(") && s.ends_with(')')
            || s == "float"
            || s.starts_with("device") =>
        {
            SchemaType::Other
        }
        _ => panic!("invalid schema type {s:?}"),
    }
}

#[test]
fn options_match_schema() {
    let c = config();
    assert_eq!(keys(&c["options"]), keys(&c["schema"]));
    for (k, t) in c["schema"].as_hash().unwrap() {
        let k = k.as_str().unwrap();
        let t = t.as_str().unwrap_or_else(|| panic!("{k}: nested schema"));
        let v = &c["options"][k];
        match schema_type(t) {
            SchemaType::Bool => assert!(v.as_bool().is_some(), "{k}: bool"),
            SchemaType::Str => assert!(v.as_str().is_some(), "{k}: str"),
            SchemaType::Int(lo, hi) => {
                let n = v.as_i64().unwrap_or_else(|| panic!("{k}: int"));
                assert!(lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi));
            }
            SchemaType::List(items) => {
                let s = v.as_str().unwrap_or_else(|| panic!("{k}: a string"));
                assert!(items.iter().any(|i| i == s), "{k}: {s} not in {items:?}");
            }
            SchemaType::Other => {}
        }
    }
}

/// The Supervisor's YAML 1.1 reads a bare on/off/yes/no as a boolean, so
/// `tls: on` would become `true` and fail the `list(off|on|required)`
/// schema. Every such value must be quoted.
#[test]
fn no_yaml11_booleans() {
    for rel in ["addon/config.yaml", "addon/translations/en.yaml"] {
        for (n, line) in read(rel).lines().enumerate() {
            let line = line.split(" #").next().unwrap_or_default();
            let value = line
                .split_once(": ")
                .map(|(_, v)| v)
                .or_else(|| line.trim_start().strip_prefix("- "));
            if let Some(v) = value {
                let v = v.trim().to_ascii_lowercase();
                assert!(
                    !matches!(v.as_str(), "on" | "off" | "yes" | "no" | "y" | "n"),
                    "{rel}:{}: bare YAML 1.1 boolean {v:?}; quote it",
                    n + 1
                );
            }
        }
    }
}

/// The field names of [`Options`], from its own `deny_unknown_fields`
/// message, so this list cannot drift from the struct.
fn struct_fields() -> BTreeSet<String> {
    let e = Options::from_json_str(r#"{"__no_such_option__": 0}"#)
        .unwrap_err()
        .to_string();
    let list = e.split("expected one of ").nth(1).unwrap();
    list.split(", ")
        .map(|f| f.trim_matches('`').to_string())
        .collect()
}

#[test]
fn schema_and_struct_cannot_drift() {
    let c = config();
    assert_eq!(struct_fields(), keys(&c["schema"]));
    // The defaults in config.yaml are what the Supervisor writes on a fresh
    // install; they parse and equal the struct's defaults.
    let written = to_json(&c["options"]).to_string();
    assert_eq!(
        Options::from_json_str(&written).unwrap(),
        Options::default()
    );
    // The shipped example is exactly those options.
    let example: Json = serde_json::from_str(&read("addon/options.example.json")).unwrap();
    assert_eq!(example, to_json(&c["options"]));
    // Every value of each list is accepted by the struct, and nothing else.
    for (k, t) in c["schema"].as_hash().unwrap() {
        let k = k.as_str().unwrap();
        if let SchemaType::List(items) = schema_type(t.as_str().unwrap()) {
            for item in items {
                let text = serde_json::json!({ k: item }).to_string();
                assert!(Options::from_json_str(&text).is_ok(), "{text}");
            }
            let text = serde_json::json!({ k: "no-such-value" }).to_string();
            assert!(Options::from_json_str(&text).is_err(), "{text}");
        }
    }
}

/// A fresh install authenticates every client: `tls: required` (mapped to
/// `-s req`) with `client_cert_required: true`, so the daemon has nothing
/// to warn about; `tls: on` would let a plain-text client join any cluster.
#[test]
fn defaults_authenticate_clients() {
    let c = config();
    assert_eq!(c["options"]["tls"].as_str(), Some("required"));
    let written = to_json(&c["options"]).to_string();
    let (config, _) = addon::config_from_json_str(&written).unwrap();
    assert_eq!(config.tls, qnetd::proto::TlsSupported::Required);
    assert!(config.client_cert_required);
    assert_eq!(config.unauthenticated_reason(), None);
    let (on, _) = addon::config_from_json_str(r#"{"tls":"on"}"#).unwrap();
    assert!(on.unauthenticated_reason().is_some());
}

// ------------------------------------------------- the panel and the rating

/// The Supervisor's `rating_security` (`supervisor/apps/utils.py`), from
/// `config.yaml` and whether the add-on ships `apparmor.txt`.
fn rating_security(c: &Yaml, apparmor_txt: bool) -> i64 {
    let yes = |key: &str| c[key].as_bool() == Some(true);
    let mut rating = 5;
    if c["apparmor"].as_bool() == Some(false) {
        rating -= 1;
    } else if apparmor_txt {
        rating += 1;
    }
    if yes("ingress") {
        rating += 2;
    } else if yes("auth_api") {
        rating += 1;
    }
    // Signing: the Supervisor's `signed` is always false.
    let privileged: Vec<&str> = c["privileged"]
        .as_vec()
        .map(|v| v.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default();
    let dangerous = [
        "BPF",
        "CHECKPOINT_RESTORE",
        "DAC_READ_SEARCH",
        "NET_ADMIN",
        "NET_RAW",
        "PERFMON",
        "SYS_ADMIN",
        "SYS_MODULE",
        "SYS_PTRACE",
        "SYS_RAWIO",
    ];
    if privileged.iter().any(|p| dangerous.contains(p)) || yes("kernel_modules") {
        rating -= 1;
    }
    match c["hassio_role"].as_str() {
        Some("manager") => rating -= 1,
        Some("admin") => rating -= 2,
        _ => {}
    }
    if yes("host_network") {
        rating -= 1;
    }
    if yes("host_pid") {
        rating -= 2;
    }
    if yes("host_uts") && privileged.contains(&"SYS_ADMIN") {
        rating -= 1;
    }
    if yes("docker_api") || yes("full_access") {
        rating = 1;
    }
    rating.clamp(1, 8)
}

#[test]
fn security_rating_is_8() {
    let c = config();
    let apparmor_txt = root().join("addon/apparmor.txt").is_file();
    assert_eq!(rating_security(&c, apparmor_txt), 8);
    // The rule itself: without Ingress the same add-on scores 6.
    let mut without = c.clone();
    if let Yaml::Hash(h) = &mut without {
        h.remove(&Yaml::String("ingress".into()));
    }
    assert_eq!(rating_security(&without, apparmor_txt), 6);
}

#[test]
fn ingress_panel_settings() {
    let c = config();
    assert_eq!(c["ingress"].as_bool(), Some(true));
    // The daemon's default Ingress port is the Supervisor's default.
    let port = c["ingress_port"].as_i64().unwrap_or(8099);
    assert_eq!(port, i64::from(qnetd::panel::INGRESS_PORT));
    assert!(
        c["panel_icon"]
            .as_str()
            .is_some_and(|i| i.starts_with("mdi:"))
    );
    assert!(c["panel_title"].as_str().is_some_and(|t| !t.is_empty()));
    // Add-on mode serves the panel there, to the Ingress proxy only.
    let (config, _) = addon::config_from_json_str("{}").unwrap();
    assert_eq!(config.http, Some(([0, 0, 0, 0], port as u16).into()));
    assert_eq!(config.http_allow, Some(qnetd::panel::INGRESS_PROXY));
}
