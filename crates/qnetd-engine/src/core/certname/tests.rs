//! The NSS host-name rules, case by case.

use super::*;

fn cn(name: &str) -> PeerNames {
    PeerNames {
        common_name: Some(name.to_owned()),
        ..PeerNames::default()
    }
}

fn san(dns: &[&str], common_name: Option<&str>) -> PeerNames {
    PeerNames {
        dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
        ip_addresses: Vec::new(),
        common_name: common_name.map(str::to_owned),
    }
}

/// (case, cluster name, certificate names, expected)
#[test]
fn matching_table() {
    let ip_san = PeerNames {
        dns_names: vec!["10.0.0.1".into()],
        ip_addresses: vec!["10.0.0.1".parse().unwrap()],
        common_name: Some("other".into()),
    };
    let cases: &[(&str, &[u8], PeerNames, bool)] = &[
        ("cn exact", b"testcluster", cn("testcluster"), true),
        ("cn other", b"testcluster", cn("other"), false),
        (
            "cn upper, name lower",
            b"testcluster",
            cn("TESTCLUSTER"),
            true,
        ),
        (
            "cn lower, name mixed",
            b"TestCluster",
            cn("testcluster"),
            true,
        ),
        ("cn prefix only", b"testcluster", cn("test"), false),
        ("cn longer", b"test", cn("testcluster"), false),
        ("no cn, no san", b"testcluster", PeerNames::default(), false),
        ("empty name", b"", cn(""), false),
        ("nul in name", b"test\0cluster", cn("test"), false),
        (
            "san wins over cn",
            b"testcluster",
            san(&["testcluster"], Some("other")),
            true,
        ),
        (
            "san hides cn",
            b"testcluster",
            san(&["other"], Some("testcluster")),
            false,
        ),
        ("second san", b"b", san(&["a", "B"], None), true),
        (
            "san case",
            b"TESTCLUSTER",
            san(&["testcluster"], None),
            true,
        ),
        (
            "san with only ip falls back to cn",
            b"testcluster",
            {
                let mut n = cn("testcluster");
                n.ip_addresses.push("10.0.0.1".parse().unwrap());
                n
            },
            true,
        ),
        (
            "wildcard label",
            b"node.example.com",
            cn("*.example.com"),
            true,
        ),
        (
            "wildcard case",
            b"NODE.Example.COM",
            cn("*.example.com"),
            true,
        ),
        (
            "wildcard one label only",
            b"a.b.example.com",
            cn("*.example.com"),
            false,
        ),
        (
            "wildcard needs dot in name",
            b"example",
            cn("*.example.com"),
            false,
        ),
        (
            "wildcard two labels is literal",
            b"a.com",
            cn("*.com"),
            false,
        ),
        ("wildcard literal equal", b"*.com", cn("*.com"), true),
        (
            "wildcard partial label",
            b"foobar.example.com",
            cn("foo*.example.com"),
            true,
        ),
        (
            "wildcard partial mismatch",
            b"bar.example.com",
            cn("foo*.example.com"),
            false,
        ),
        (
            "wildcard not last in label",
            b"foo.example.com",
            cn("f*o.example.com"),
            false,
        ),
        (
            "wildcard idna needs bare star",
            b"xn--a.example.com",
            cn("x*.example.com"),
            false,
        ),
        (
            "wildcard idna bare star",
            b"xn--a.example.com",
            cn("*.example.com"),
            true,
        ),
        (
            "wildcard in san",
            b"c1.corp.lan",
            san(&["*.corp.lan"], Some("c1.corp.lan")),
            true,
        ),
        ("wildcard trailing dot pattern", b"a.b.", cn("*.b."), false),
        (
            "space in cn is fine",
            b"Qnetd Server",
            cn("Qnetd Server"),
            true,
        ),
        (
            "space in san is fine",
            b"Qnetd Server",
            san(&["Qnetd Server"], None),
            true,
        ),
        (
            "san with comma is quoted",
            b"a,b",
            san(&["a,b"], None),
            false,
        ),
        ("cn with comma is not quoted", b"a,b", cn("a,b"), true),
        (
            "san double space is quoted",
            b"a  b",
            san(&["a  b"], None),
            false,
        ),
        (
            "san leading space is quoted",
            b" a",
            san(&[" a"], None),
            false,
        ),
        ("cn quote char is escaped", b"a\"b", cn("a\"b"), false),
        ("cn control char is escaped", b"a\x01b", cn("a\x01b"), false),
        ("cn escaped form matches", b"a\\01b", cn("a\x01b"), true),
        ("non-utf8 name", b"\xff\xfe", cn("x"), false),
        ("ip name vs ip san", b"10.0.0.1", ip_san.clone(), true),
        ("ip name vs other ip san", b"10.0.0.2", ip_san, false),
        (
            "ip name ignores dns san",
            b"10.0.0.1",
            san(&["10.0.0.1"], None),
            false,
        ),
        (
            "ip name falls back to cn",
            b"10.0.0.1",
            cn("10.0.0.1"),
            true,
        ),
        (
            "ip name cn has no wildcard",
            b"10.0.0.1",
            cn("*.0.0.1"),
            false,
        ),
        (
            "ipv4 name vs mapped v6 san",
            b"10.0.0.1",
            PeerNames {
                ip_addresses: vec!["::ffff:10.0.0.1".parse().unwrap()],
                ..PeerNames::default()
            },
            true,
        ),
    ];
    for (case, name, names, want) in cases {
        assert_eq!(cluster_name_matches(name, names), *want, "case {case}");
    }
}

#[test]
fn render_matches_nss() {
    let cases: &[(&[u8], bool, &[u8])] = &[
        (b"plain", true, b"plain"),
        (b"a,b", true, b"\"a,b\""),
        (b"a,b", false, b"a,b"),
        (b"a\"b", true, b"a\\\"b"),
        (b"a\\b", false, b"a\\\\b"),
        (b"a\nb", true, b"a\\0ab"),
        (b"a\x7f", false, b"a\\7f"),
        (b" a", true, b"\" a\""),
        (b"a  b", true, b"\"a  b\""),
        (b"a b", true, b"a b"),
        (b"", true, b""),
    ];
    for (raw, quote, want) in cases {
        assert_eq!(
            render(raw, *quote),
            *want,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}
