//! Tests of the corosync.conf editor: a corpus of realistic files with
//! golden outputs (`src/pair/testdata/corosync-conf/`), and properties.
//!
//! Golden files next to each `NAME.conf`: `NAME.add` (the file after
//! [`add_device`]) with `NAME.add.log` (its warnings and summary), or
//! `NAME.add.err` (the refusal); `NAME.remove` ([`remove_device`] on the
//! added file, or on the input when it has a device). `QNETD_BLESS=1`
//! rewrites them; review the diff before committing.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pair/testdata/corosync-conf")
}

/// The device settings each corpus file is edited with.
fn settings_for(name: &str) -> DeviceSettings<'static> {
    let (host, port) = match name {
        "pve7-3node-two-links" => ("qnetd.example.org", DEFAULT_PORT),
        "pve9-4node-ipv6" => ("2001:db8::10", DEFAULT_PORT),
        "plain-two-node" => ("192.0.2.10", 15403),
        _ => ("192.0.2.10", DEFAULT_PORT),
    };
    DeviceSettings {
        host,
        port,
        force: name.ends_with(".force"),
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.strip_suffix(".conf")?.to_owned();
            Some((name, fs::read(&p).ok()?))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 9, "corpus incomplete: {}", out.len());
    out
}

fn golden(file: &str, actual: &str) {
    let path = corpus_dir().join(file);
    if std::env::var_os("QNETD_BLESS").is_some() {
        fs::write(&path, actual).expect("bless");
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (QNETD_BLESS=1 to create)", path.display()));
    assert_eq!(actual, expected, "{file} differs");
}

fn log(edit: &Edit) -> String {
    let mut s = String::new();
    for w in &edit.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s.push_str(&format!(
        "nodes: {} config_version: {}\n",
        edit.nodes, edit.config_version
    ));
    s
}

#[test]
fn corpus_round_trips_byte_for_byte() {
    for (name, input) in corpus() {
        let conf = CorosyncConf::parse(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(conf.to_text().as_bytes(), &input[..], "{name}");
    }
}

#[test]
fn corpus_golden_edits() {
    let mut cases = corpus();
    // The existing device again, replaced with --force.
    let existing = cases
        .iter()
        .find(|(n, _)| n == "pve-existing-device")
        .expect("case")
        .1
        .clone();
    cases.push(("pve-existing-device.force".to_owned(), existing));
    for (name, input) in cases {
        let added = add_device(&input, settings_for(&name));
        match &added {
            Ok(edit) => {
                golden(&format!("{name}.add"), &edit.text);
                golden(&format!("{name}.add.log"), &log(edit));
                // The output parses and round-trips too.
                let again = CorosyncConf::parse(edit.text.as_bytes()).expect("output parses");
                assert_eq!(again.to_text(), edit.text);
                assert!(again.has_device());
            }
            Err(e) => golden(&format!("{name}.add.err"), &format!("{e}\n")),
        }
        let removable = added
            .as_ref()
            .map_or(input.clone(), |e| e.text.clone().into_bytes());
        if let Ok(removed) = remove_device(&removable) {
            golden(&format!("{name}.remove"), &removed.text);
        }
    }
}

#[test]
fn second_add_is_refused_and_force_replaces() {
    for (name, input) in corpus() {
        let Ok(first) = add_device(&input, settings_for(&name)) else {
            continue;
        };
        assert_eq!(
            add_device(first.text.as_bytes(), settings_for(&name)),
            Err(ConfError::AlreadyConfigured),
            "{name}"
        );
        let forced = add_device(
            first.text.as_bytes(),
            DeviceSettings {
                host: "198.51.100.7",
                force: true,
                ..settings_for(&name)
            },
        )
        .expect("force");
        assert_eq!(forced.config_version, first.config_version + 1);
        let conf = CorosyncConf::parse(forced.text.as_bytes()).expect("parse");
        assert_eq!(conf.get("quorum.device.net.host"), Some("198.51.100.7"));
        assert!(forced.warnings[0].contains("replaced"), "{name}");
    }
}

#[test]
fn remove_after_add_is_the_original_with_version_plus_two() {
    for (name, input) in corpus() {
        let conf = CorosyncConf::parse(&input).expect("parse");
        let Ok(added) = add_device(&input, settings_for(&name)) else {
            continue;
        };
        if !added.warnings.is_empty() {
            continue; // removed options do not come back
        }
        let removed = remove_device(added.text.as_bytes()).expect("remove");
        let undo = raise_config_version(&input, 2).expect("raise");
        assert_eq!(removed.text, undo.text, "{name}");
        assert_eq!(
            removed.config_version,
            conf.get("totem.config_version")
                .map_or(0, |v| v.parse::<u64>().expect("number"))
                + 2
        );
        assert_eq!(
            remove_device(removed.text.as_bytes()),
            Err(ConfError::NoDevice)
        );
    }
}

#[test]
fn device_block_content_follows_node_parity_and_port() {
    for (name, input) in corpus() {
        let Ok(edit) = add_device(&input, settings_for(&name)) else {
            continue;
        };
        let conf = CorosyncConf::parse(edit.text.as_bytes()).expect("parse");
        let s = settings_for(&name);
        assert_eq!(conf.get("quorum.device.model"), Some("net"), "{name}");
        assert_eq!(conf.get("quorum.device.net.tls"), Some("on"));
        assert_eq!(conf.get("quorum.device.net.host"), Some(s.host));
        let even = conf.node_count().is_multiple_of(2);
        assert_eq!(
            conf.get("quorum.device.net.algorithm"),
            Some(if even { "ffsplit" } else { "lms" }),
            "{name}"
        );
        assert_eq!(
            conf.get("quorum.device.votes"),
            even.then_some("1"),
            "{name}"
        );
        let port = s.port.to_string();
        assert_eq!(
            conf.get("quorum.device.net.port"),
            (s.port != DEFAULT_PORT).then_some(port.as_str())
        );
        for (key, _) in REMOVED_QUORUM_KEYS {
            assert_eq!(conf.get(&format!("quorum.{key}")), None, "{name} {key}");
        }
        assert_eq!(
            conf.get("totem.config_version"),
            Some(edit.config_version.to_string().as_str())
        );
    }
}

/// Every `path = value` of a file, sorted: its content as corosync and
/// Proxmox's parser see it, without order, comments or layout.
fn flatten(conf: &CorosyncConf) -> Vec<String> {
    fn walk(conf: &CorosyncConf, at: Option<usize>, prefix: &str, out: &mut Vec<String>) {
        for (n, i) in conf.children(at).enumerate() {
            let line = &conf.lines[i];
            match &line.kind {
                Kind::Pair { key, value } => {
                    out.push(format!(
                        "{prefix}{} = {}",
                        &line.text[key.clone()],
                        &line.text[value.clone()]
                    ));
                }
                Kind::Open { name, .. } => {
                    let name = &line.text[name.clone()];
                    // Repeated sections (node, interface) keep their order.
                    let tag = if matches!(name, "node" | "interface") {
                        format!("{name}[{n}]")
                    } else {
                        name.to_owned()
                    };
                    walk(conf, Some(i), &format!("{prefix}{tag}."), out);
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(conf, None, "", &mut out);
    out.sort();
    out
}

#[test]
fn same_content_as_pvecm_writes() {
    let mut checked = 0;
    for (name, input) in corpus() {
        let Ok(pvecm) = fs::read(corpus_dir().join(format!("{name}.pvecm"))) else {
            continue;
        };
        let ours = add_device(&input, settings_for(&name)).expect("add");
        let ours = CorosyncConf::parse(ours.text.as_bytes()).expect("parse");
        let theirs = CorosyncConf::parse(&pvecm).expect("pvecm output parses");
        // Proxmox keeps the sections in sorted order and numbers nodes the
        // same way, so the flattened forms compare directly.
        assert_eq!(flatten(&ours), flatten(&theirs), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn queries() {
    let input = fs::read(corpus_dir().join("pve7-3node-two-links.conf")).expect("read");
    let conf = CorosyncConf::parse(&input).expect("parse");
    assert_eq!(conf.cluster_name(), Some("prod-cl"));
    assert_eq!(conf.node_count(), 3);
    assert!(!conf.has_device());
    assert_eq!(conf.get("totem.interface.linknumber"), Some("0"));
    assert_eq!(conf.get("nodelist.node.ring0_addr"), Some("10.10.10.1"));
    assert_eq!(conf.get("totem.nothing"), None);
    assert_eq!(conf.get("nothing.at.all"), None);
    assert_eq!(conf.get("totem"), None);
    let v6 = fs::read(corpus_dir().join("pve9-4node-ipv6.conf")).expect("read");
    let conf = CorosyncConf::parse(&v6).expect("parse");
    assert_eq!(conf.get("nodelist.node.ring0_addr"), Some("fd00:10::1"));
}

fn minimal(quorum: &str) -> String {
    format!(
        "totem {{\n  cluster_name: c\n  config_version: 1\n}}\nnodelist {{\n  node {{\n    nodeid: 1\n  }}\n}}\n{quorum}"
    )
}

fn add(text: &str) -> Result<Edit, ConfError> {
    add_device(
        text.as_bytes(),
        DeviceSettings {
            host: "192.0.2.1",
            port: DEFAULT_PORT,
            force: false,
        },
    )
}

#[test]
fn refusals_name_the_problem() {
    assert_eq!(add(&minimal("")), Err(ConfError::MissingSection("quorum")));
    assert_eq!(
        add(&minimal("quorum {\n}\n")),
        Err(ConfError::NotVotequorum)
    );
    assert_eq!(
        add(&minimal("quorum {\n provider: other\n}\n")),
        Err(ConfError::NotVotequorum)
    );
    let q = "quorum {\n provider: corosync_votequorum\n}\n";
    assert!(add(&minimal(q)).is_ok());
    assert_eq!(
        add(&format!("{}{q}", minimal(q))),
        Err(ConfError::Duplicate("quorum"))
    );
    assert_eq!(
        add(&format!("totem {{\n}}\nnodelist {{\n}}\n{q}")),
        Err(ConfError::NoNodes)
    );
    assert_eq!(
        add(&format!("totem {{\n}}\n{q}")),
        Err(ConfError::MissingSection("nodelist"))
    );
    assert_eq!(
        add(&format!("nodelist {{\n node {{\n }}\n}}\n{q}")),
        Err(ConfError::MissingSection("totem"))
    );
    for bad in ["x", "-1", "+1", " ", "18446744073709551615", "1e3"] {
        let text = minimal(q).replace("config_version: 1", &format!("config_version: {bad}"));
        assert!(
            matches!(add(&text), Err(ConfError::BadConfigVersion(_))),
            "{bad:?}"
        );
    }
    for host in [
        "",
        "a b",
        "a\nb",
        "-x",
        "a{",
        "a}",
        "a#b",
        "[::1]",
        "x'y",
        &"a".repeat(254),
    ] {
        let r = add_device(
            minimal(q).as_bytes(),
            DeviceSettings {
                host,
                port: DEFAULT_PORT,
                force: false,
            },
        );
        assert_eq!(r, Err(ConfError::BadHost(host.to_owned())), "{host:?}");
    }
    let r = add_device(
        minimal(q).as_bytes(),
        DeviceSettings {
            host: "h",
            port: 0,
            force: false,
        },
    );
    assert_eq!(r, Err(ConfError::BadPort));
    assert_eq!(
        remove_device(minimal(q).as_bytes()),
        Err(ConfError::NoDevice)
    );
}

#[test]
fn syntax_errors_carry_line_numbers() {
    let cases: &[(&str, ConfError)] = &[
        (
            "totem {\n  junk\n}\n",
            ConfError::Syntax {
                line: 2,
                reason: "neither 'key: value', 'section {', '}' nor a comment",
            },
        ),
        ("}\n", ConfError::UnexpectedClose { line: 1 }),
        (
            "a {\n b {\n}\n",
            ConfError::Unclosed {
                name: "a".into(),
                line: 1,
            },
        ),
        (
            "quorum { provider: x }\n",
            ConfError::Syntax {
                line: 1,
                reason: "text after '{' (put each entry on its own line)",
            },
        ),
        (
            " {\n}\n",
            ConfError::Syntax {
                line: 1,
                reason: "'{' without a section name",
            },
        ),
        (
            "a b {\n}\n",
            ConfError::Syntax {
                line: 1,
                reason: "a section name is one word followed by '{'",
            },
        ),
        (
            ": v\n",
            ConfError::Syntax {
                line: 1,
                reason: "':' without a key",
            },
        ),
        (
            "a b: v\n",
            ConfError::Syntax {
                line: 1,
                reason: "a key is one word followed by ':'",
            },
        ),
        (
            "a {\n} x\n",
            ConfError::Syntax {
                line: 2,
                reason: "text after '}'",
            },
        ),
    ];
    for (text, err) in cases {
        assert_eq!(
            CorosyncConf::parse(text.as_bytes()).as_ref().err(),
            Some(err),
            "{text:?}"
        );
    }
    let deep = "a {\n".repeat(MAX_DEPTH + 1) + &"}\n".repeat(MAX_DEPTH + 1);
    assert_eq!(
        CorosyncConf::parse(deep.as_bytes()).err(),
        Some(ConfError::TooDeep {
            line: MAX_DEPTH + 1
        })
    );
    let ok = "a {\n".repeat(MAX_DEPTH) + &"}\n".repeat(MAX_DEPTH);
    assert!(CorosyncConf::parse(ok.as_bytes()).is_ok());
    assert_eq!(
        CorosyncConf::parse(&vec![b'#'; MAX_CONF_LEN + 1]).err(),
        Some(ConfError::TooLarge(MAX_CONF_LEN + 1))
    );
    assert_eq!(
        CorosyncConf::parse(b"a: \xff\n").err(),
        Some(ConfError::NotUtf8)
    );
}

#[test]
fn values_are_read_as_corosync_reads_them() {
    let conf = CorosyncConf::parse(
        b"totem {\n\tcluster_name:x y  \t\n\tkey: v # not a comment\n\tq: \"quoted\"\n\te:\n\tk: }\n}\n",
    )
    .expect("parse");
    assert_eq!(conf.get("totem.cluster_name"), Some("x y"));
    assert_eq!(conf.get("totem.key"), Some("v # not a comment"));
    assert_eq!(conf.get("totem.q"), Some("\"quoted\""));
    assert_eq!(conf.get("totem.e"), Some(""));
    assert_eq!(conf.get("totem.k"), Some("}"));
}

#[test]
fn a_file_at_the_size_limit_can_still_be_edited() {
    let q = "quorum {\n provider: corosync_votequorum\n}\n";
    let mut text = minimal(q);
    let pad = MAX_CONF_LEN - text.len();
    text.push_str(&"#".repeat(pad - 1));
    text.push('\n');
    assert_eq!(text.len(), MAX_CONF_LEN);
    let edit = add(&text).expect("add");
    assert!(edit.text.len() > MAX_CONF_LEN);
    assert!(
        remove_device(edit.text.as_bytes()).is_err(),
        "the limit still holds for input"
    );
}

#[test]
fn config_version_keeps_its_spacing() {
    let text = minimal("quorum {\n provider: corosync_votequorum\n}\n")
        .replace("config_version: 1", "config_version:\t 41  ");
    let edit = add(&text).expect("add");
    assert!(
        edit.text.contains("  config_version:\t 42  \n"),
        "{}",
        edit.text
    );
    assert_eq!(edit.config_version, 42);
}

/// Lines that are mostly valid, with hostile whitespace and line endings.
fn line_strategy() -> impl Strategy<Value = String> {
    let indent = prop::sample::select(vec!["", " ", "\t", "  \t", "    "]);
    let word = "[a-z_]{1,8}";
    let value = "[ -~]{0,12}";
    let eol = prop::sample::select(vec!["\n", "\r\n", "\r\r\n"]);
    (indent, word, value, eol, 0u8..6).prop_map(|(i, w, v, e, kind)| match kind {
        0 => format!("{i}{w} {{{e}"),
        1 => format!("{i}}}{e}"),
        2 => format!("{i}# {v}{e}"),
        3 => format!("{i}{e}"),
        _ => format!("{i}{w}:{v}{e}"),
    })
}

proptest! {
    #[test]
    fn parse_print_is_identity(lines in prop::collection::vec(line_strategy(), 0..40), cut in any::<bool>()) {
        let mut text: String = lines.concat();
        if cut { text.pop(); }
        if let Ok(conf) = CorosyncConf::parse(text.as_bytes()) {
            prop_assert_eq!(conf.to_text(), text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(conf) = CorosyncConf::parse(&bytes) {
            let printed = conf.to_text();
            prop_assert_eq!(printed.as_bytes(), &bytes[..]);
        }
        let _ = add_device(&bytes, DeviceSettings { host: "h", port: 1, force: true });
        let _ = remove_device(&bytes);
    }

    #[test]
    fn edits_of_valid_files_never_fail_inside(
        totem in prop::collection::vec(line_strategy(), 0..8),
        quorum in prop::collection::vec(line_strategy(), 0..8),
        node in prop::collection::vec(line_strategy(), 0..8),
        force in any::<bool>(),
    ) {
        let text = format!(
            "totem {{\n{}}}\nnodelist {{\n node {{\n{}  }}\n}}\nquorum {{\n provider: corosync_votequorum\n{}}}\n",
            totem.concat(), node.concat(), quorum.concat()
        );
        let settings = DeviceSettings { host: "fd00::1", port: 5404, force };
        if let Ok(edit) = add_device(text.as_bytes(), settings) {
            let conf = CorosyncConf::parse(edit.text.as_bytes()).expect("the output parses");
            prop_assert_eq!(conf.get("quorum.device.net.host"), Some("fd00::1"));
            let removed = remove_device(edit.text.as_bytes()).expect("and the device comes out");
            prop_assert!(!CorosyncConf::parse(removed.text.as_bytes()).expect("parses").has_device());
        }
    }

    #[test]
    fn add_keeps_every_other_line(extra in prop::collection::vec(line_strategy(), 0..10)) {
        // Random lines inside the logging section survive the edit.
        let body: String = extra.concat();
        let text = format!("{}logging {{\n{body}}}\n", minimal("quorum {\n provider: corosync_votequorum\n}\n"));
        if let Ok(edit) = add(&text) {
            let kept = format!("logging {{\n{body}}}\n");
            prop_assert!(edit.text.contains(&kept));
        }
    }
}
