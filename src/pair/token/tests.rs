//! Tokens (format, parsing, randomness) and pairing windows (binding,
//! limits, lifetime, lock-out, name collisions).

use super::*;

const T0: Timestamp = Timestamp::from_millis(1_000_000);

fn token(seed: u8) -> Token {
    let mut r = [0u8; RANDOM_LEN];
    for (i, b) in r.iter_mut().enumerate() {
        *b = seed
            .wrapping_mul(31)
            .wrapping_add(u8::try_from(i).unwrap_or(0) * 7);
    }
    Token::from_random(&r)
}

fn no_live(_: &str) -> bool {
    false
}

fn window(params: WindowParams) -> (Token, PairingWindow) {
    let t = token(1);
    let w = PairingWindow::open(params, &t, T0, no_live).expect("open");
    (t, w)
}

#[test]
fn token_format_and_round_trip() {
    let t = token(9);
    let s = t.to_string();
    assert_eq!(s.len(), ID_LEN + 1 + SECRET_LEN);
    assert!(
        s.bytes()
            .all(|c| c == b'.' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
    assert_eq!(Token::parse(&s), Ok(t.clone()));
    assert_eq!(&s[..ID_LEN], t.id().as_str());
    // Debug never shows the secret.
    assert!(!format!("{t:?}").contains(&s[ID_LEN + 1..]));
}

#[test]
fn from_random_uses_every_byte() {
    let base = [0u8; RANDOM_LEN];
    let t0 = Token::from_random(&base);
    for i in 0..RANDOM_LEN {
        let mut r = base;
        r[i] = 0xa5;
        assert_ne!(Token::from_random(&r), t0, "byte {i} ignored");
    }
    assert_eq!(
        t0.to_string(),
        format!("{}.{}", "0".repeat(8), "0".repeat(32))
    );
}

#[test]
fn generate_gives_distinct_tokens() {
    let a = Token::generate().expect("rng");
    let b = Token::generate().expect("rng");
    assert_ne!(a, b);
}

#[test]
fn hostile_token_strings_are_rejected() {
    let good = token(3).to_string();
    let cases: Vec<String> = vec![
        String::new(),
        ".".into(),
        good[..good.len() - 1].into(),
        format!("{good}0"),
        good.replace('.', ""),
        good.replace('.', "/"),
        format!("{}.{}", &good[..ID_LEN], &good[ID_LEN..]),
        good.to_uppercase(),
        format!("{}\n", &good[..good.len() - 1]),
        format!("{}%00", &good[..good.len() - 3]),
        format!("{} ", &good[..good.len() - 1]),
        format!("{}é", &good[..good.len() - 2]),
        format!("{}'", &good[..good.len() - 1]),
        "../../../../etc/passwd.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        "a".repeat(100_000),
    ];
    for c in &cases {
        assert!(Token::parse(c).is_err(), "accepted {c:?}");
    }
    assert_eq!(
        Token::parse(&good.to_uppercase()),
        Err(TokenParseError::Character)
    );
    assert_eq!(Token::parse("abc"), Err(TokenParseError::Shape));
}

#[test]
fn constant_time_compare() {
    let a = sha256(b"one");
    let mut b = a;
    assert!(constant_time_eq(&a, &b));
    for i in 0..32 {
        b = a;
        b[i] ^= 1;
        assert!(!constant_time_eq(&a, &b), "difference at {i} missed");
    }
}

#[test]
fn right_token_authenticates_and_wrong_ones_do_not() {
    let (t, mut w) = window(WindowParams::default());
    assert!(w.authenticate(&t.to_string(), T0).is_ok());
    let other = token(2);
    assert_eq!(
        w.authenticate(&other.to_string(), T0).err(),
        Some(Refusal::UnknownId)
    );
    let wrong_secret = format!("{}.{}", t.id(), "f".repeat(SECRET_LEN));
    assert_eq!(
        w.authenticate(&wrong_secret, T0).err(),
        Some(Refusal::BadSecret {
            remaining: MAX_FAILED_ATTEMPTS - 1
        })
    );
    assert!(matches!(
        w.authenticate("nonsense", T0),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn expiry() {
    let (t, mut w) = window(WindowParams {
        ttl_ms: 1000,
        ..WindowParams::default()
    });
    let s = t.to_string();
    assert!(w.authenticate(&s, T0.add_millis(999)).is_ok());
    assert!(w.is_open(T0.add_millis(999)));
    assert_eq!(
        w.authenticate(&s, T0.add_millis(1000)).err(),
        Some(Refusal::Expired)
    );
    assert!(!w.is_open(T0.add_millis(1000)));
    assert_eq!(w.end(T0.add_millis(999)), None);
    assert_eq!(w.end(T0.add_millis(1000)), Some(WindowEnd::Expired));
    assert_eq!(Refusal::Expired.kind(), "expired");
    let (_, d) = window(WindowParams::default());
    assert_eq!(d.expires(), T0.add_millis(30 * 60 * 1000));
}

#[test]
fn lock_out_after_too_many_wrong_secrets() {
    let (t, mut w) = window(WindowParams::default());
    let wrong = format!("{}.{}", t.id(), "0".repeat(SECRET_LEN));
    // Presentations of other ids do not count.
    for _ in 0..20 {
        assert_eq!(
            w.authenticate(&token(7).to_string(), T0).err(),
            Some(Refusal::UnknownId)
        );
    }
    for i in 1..MAX_FAILED_ATTEMPTS {
        assert_eq!(
            w.authenticate(&wrong, T0).err(),
            Some(Refusal::BadSecret {
                remaining: MAX_FAILED_ATTEMPTS - i
            })
        );
    }
    assert_eq!(w.end(T0), None);
    assert_eq!(w.authenticate(&wrong, T0).err(), Some(Refusal::LockedOut));
    // Lock-out wins over a later expiry.
    assert_eq!(
        w.end(T0.add_millis(u64::MAX / 2)),
        Some(WindowEnd::LockedOut)
    );
    assert_eq!(WindowEnd::LockedOut.as_str(), "locked_out");
    // Closed for good, even for the right secret.
    assert_eq!(
        w.authenticate(&t.to_string(), T0).err(),
        Some(Refusal::LockedOut)
    );
    assert!(!w.is_open(T0));
}

#[test]
fn close_by_operator() {
    let (t, mut w) = window(WindowParams::default());
    w.close();
    assert_eq!(
        w.authenticate(&t.to_string(), T0).err(),
        Some(Refusal::Closed)
    );
    assert_eq!(w.end(T0), Some(WindowEnd::Closed));
}

#[test]
fn cluster_fixed_at_first_use() {
    let (t, mut w) = window(WindowParams::default());
    let s = t.to_string();
    let mut a = w.authenticate(&s, T0).expect("auth");
    assert_eq!(a.check_sign().err(), Some(Refusal::NotBound));
    a.bind_cluster("alpha", 2, no_live).expect("bind");
    assert_eq!(a.check_sign(), Ok("alpha"));
    let mut a = w.authenticate(&s, T0).expect("auth");
    a.bind_cluster("alpha", 2, no_live)
        .expect("same name again");
    assert_eq!(
        a.bind_cluster("beta", 2, no_live).err(),
        Some(Refusal::ClusterMismatch {
            bound: "alpha".into(),
            requested: "beta".into()
        })
    );
    assert_eq!(w.cluster(), Some("alpha"));
    assert_eq!(w.max_certs(), Some(2));
}

#[test]
fn given_cluster_is_enforced() {
    let (t, mut w) = window(WindowParams {
        cluster: Some("prod".into()),
        ..WindowParams::default()
    });
    let mut a = w.authenticate(&t.to_string(), T0).expect("auth");
    assert!(matches!(
        a.bind_cluster("test", 2, no_live),
        Err(Refusal::ClusterMismatch { .. })
    ));
    a.bind_cluster("prod", 3, no_live).expect("bind");
}

#[test]
fn certificate_count_is_bounded() {
    let (t, mut w) = window(WindowParams {
        nodes: Some(2),
        ..WindowParams::default()
    });
    let s = t.to_string();
    let mut a = w.authenticate(&s, T0).expect("auth");
    assert_eq!(
        a.bind_cluster("c", 3, no_live).err(),
        Some(Refusal::TooManyNodes { nodes: 3, max: 2 })
    );
    a.bind_cluster("c", 2, no_live).expect("bind");
    a.record_signed().expect("1");
    assert_eq!(a.window().end(T0), None);
    a.record_signed().expect("2");
    assert_eq!(a.window().end(T0), Some(WindowEnd::Completed));
    assert_eq!(a.check_sign().err(), Some(Refusal::CertLimit(2)));
    assert_eq!(a.record_signed().err(), Some(Refusal::CertLimit(2)));
    assert_eq!(a.check_sign().err().map(|r| r.kind()), Some("all_signed"));
    assert_eq!(w.issued(), 2);
    // The count from the node count when --nodes was not given.
    let (t, mut w) = window(WindowParams::default());
    let mut a = w.authenticate(&t.to_string(), T0).expect("auth");
    a.bind_cluster("c", 3, no_live).expect("bind");
    for _ in 0..3 {
        a.record_signed().expect("sign");
    }
    assert_eq!(a.record_signed().err(), Some(Refusal::CertLimit(3)));
    assert_eq!(
        a.bind_cluster("c", MAX_NODES + 1, no_live).err(),
        Some(Refusal::TooManyNodes {
            nodes: MAX_NODES + 1,
            max: 3
        })
    );
}

#[test]
fn bad_nodes_parameter_is_refused() {
    for n in [0, MAX_NODES + 1] {
        let r = PairingWindow::open(
            WindowParams {
                nodes: Some(n),
                ..WindowParams::default()
            },
            &token(1),
            T0,
            no_live,
        );
        assert!(matches!(r, Err(Refusal::TooManyNodes { .. })), "{n}");
    }
}

#[test]
fn name_collision_rule() {
    assert!(check_name_collision("a", false, false).is_ok());
    assert!(check_name_collision("a", true, true).is_ok());
    assert_eq!(
        check_name_collision("a", true, false),
        Err(Refusal::NameTaken("a".into()))
    );
    let live = |n: &str| n == "taken";
    // At open, for a given name.
    let open = |replace| {
        PairingWindow::open(
            WindowParams {
                cluster: Some("taken".into()),
                replace,
                ..WindowParams::default()
            },
            &token(1),
            T0,
            live,
        )
    };
    assert_eq!(open(false).err(), Some(Refusal::NameTaken("taken".into())));
    assert!(open(true).is_ok());
    // At first use, for a name fixed then.
    let (t, mut w) = window(WindowParams::default());
    let mut a = w.authenticate(&t.to_string(), T0).expect("auth");
    assert_eq!(
        a.bind_cluster("taken", 2, live).err(),
        Some(Refusal::NameTaken("taken".into()))
    );
    assert_eq!(w.cluster(), None);
    let mut a = w.authenticate(&t.to_string(), T0).expect("auth");
    a.bind_cluster("free", 2, live).expect("bind");
    a.record_signed().expect("sign");
    // Our own certificates do not make the name taken for this window.
    a.bind_cluster("free", 2, |_| true)
        .expect("rebind after signing");
}

#[test]
fn cluster_names() {
    for ok in ["a", "pve-cluster", "Prod_2", "x.y", &"a".repeat(64)] {
        assert!(valid_cluster_name(ok), "{ok}");
    }
    for bad in [
        "",
        "-a",
        ".a",
        "a b",
        "a/b",
        "a'b",
        "a$b",
        "a\nb",
        "é",
        &"a".repeat(65),
    ] {
        assert!(!valid_cluster_name(bad), "{bad:?}");
    }
    let r = PairingWindow::open(
        WindowParams {
            cluster: Some("a b".into()),
            ..WindowParams::default()
        },
        &token(1),
        T0,
        no_live,
    );
    assert_eq!(r.err(), Some(Refusal::BadClusterName("a b".into())));
}

#[test]
fn refusal_messages_never_contain_the_secret() {
    let (t, mut w) = window(WindowParams::default());
    let s = t.to_string();
    let secret = &s[ID_LEN + 1..];
    let wrong = format!("{}.{}", t.id(), "1".repeat(SECRET_LEN));
    for _ in 0..MAX_FAILED_ATTEMPTS {
        let e = w.authenticate(&wrong, T0).expect_err("refused");
        assert!(!e.to_string().contains(secret));
    }
    assert!(!format!("{w:?}").contains(secret));
}
