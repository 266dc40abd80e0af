//! The node side of pairing: the one-line node command, and the bash script
//! it downloads (`src/pair/node-pair.sh`, a template with `@NAME@` fields).
//!
//! [`render`] fills in the server address and port, the SPKI pin, the token
//! and the CA certificate. Every value is validated to a character set that
//! needs no quoting ([`valid_host`], [`valid_pin`], a [`Token`], digits) and
//! then single-quoted all the same ([`shell_quote`]); the CA certificate is
//! re-encoded here from DER into PEM, so only base64 text lands in the
//! script's here-document. A value that fails validation is an error, never
//! escaped into something else.
//!
//! What the script does, step by step, is described at its top and in the
//! [`crate::pair`] module documentation (the HTTP API it calls).

use core::fmt;

use super::corosync_conf::valid_host;
use super::pin::{one_certificate, valid_pin};
use super::token::Token;

/// The script template.
pub const TEMPLATE: &str = include_str!("node-pair.sh");

/// A value that cannot go into the script or the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// The address the nodes use is not a host name or IP address.
    BadHost(String),
    /// Port 0.
    BadPort,
    /// Not a `sha256//BASE64` pin.
    BadPin(String),
    /// The CA certificate is not one DER X.509 certificate.
    BadCa,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHost(h) => write!(
                f,
                "pairing address '{}' is not a host name or IP address",
                h.escape_debug()
            ),
            Self::BadPort => f.write_str("pairing port must be 1 to 65535"),
            Self::BadPin(p) => write!(f, "'{}' is not a sha256// pin", p.escape_debug()),
            Self::BadCa => f.write_str("the CA certificate is not a DER X.509 certificate"),
        }
    }
}

impl std::error::Error for ScriptError {}

/// What the script is made for.
#[derive(Debug, Clone, Copy)]
pub struct ScriptParams<'a> {
    /// The address the nodes reach this server at (no brackets for IPv6).
    pub host: &'a str,
    /// The server's TCP port.
    pub port: u16,
    /// [`super::pin::spki_pin`] of the server certificate.
    pub pin: &'a str,
    /// The window's token.
    pub token: &'a Token,
    /// The CA certificate, DER.
    pub ca_der: &'a [u8],
}

/// `s` as one single-quoted shell word.
#[must_use]
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `host` as it goes into a URL: IPv6 addresses in brackets.
#[must_use]
pub fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn check(host: &str, port: u16, pin: &str) -> Result<(), ScriptError> {
    if !valid_host(host) {
        return Err(ScriptError::BadHost(host.to_owned()));
    }
    if port == 0 {
        return Err(ScriptError::BadPort);
    }
    if !valid_pin(pin) {
        return Err(ScriptError::BadPin(pin.to_owned()));
    }
    Ok(())
}

/// The command printed for the user to run on a node: the script fetched
/// with the server authenticated by its pin (`-k` because the certificate
/// names "Qnetd Server", not the address; curl still checks the pin).
/// No `-f`: a refusal's body is a script too, which prints the reason and
/// exits 1 (`super::http`), where `-f` would print only the status code
/// and let `| bash` exit 0.
///
/// # Errors
///
/// [`ScriptError`] for a value that fails validation.
pub fn node_command(
    host: &str,
    port: u16,
    pin: &str,
    token: &Token,
) -> Result<String, ScriptError> {
    check(host, port, pin)?;
    Ok(format!(
        "curl -sSk --pinnedpubkey {pin} https://{}:{port}/pair/{token} | bash",
        url_host(host)
    ))
}

/// PEM text of one DER certificate.
pub(crate) fn pem(der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----");
    out
}

/// The node script for `params`.
///
/// # Errors
///
/// [`ScriptError`] for a value that fails validation.
pub fn render(params: &ScriptParams<'_>) -> Result<String, ScriptError> {
    check(params.host, params.port, params.pin)?;
    one_certificate(params.ca_der).map_err(|_| ScriptError::BadCa)?;
    let fields = [
        ("@QNETD_HOST@", shell_quote(params.host)),
        ("@QNETD_URL_HOST@", shell_quote(&url_host(params.host))),
        ("@QNETD_PORT@", shell_quote(&params.port.to_string())),
        ("@QNETD_PIN@", shell_quote(params.pin)),
        ("@QNETD_TOKEN@", shell_quote(&params.token.to_string())),
        ("@QNETD_CA_PEM@", pem(params.ca_der)),
    ];
    let mut out = TEMPLATE.to_owned();
    for (field, value) in fields {
        out = out.replacen(field, &value, 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    use super::*;
    use crate::pair::pin::spki_pin;

    fn reference(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/testdata/reference")
            .join(name);
        CertificateDer::from_pem_file(&path).expect("pem").to_vec()
    }

    fn token() -> Token {
        Token::from_random(&[0x5a; crate::pair::token::RANDOM_LEN])
    }

    fn script(host: &str) -> String {
        let ca = reference("qnetd-cacert.crt");
        let pin = spki_pin(&reference("qnetd-server.crt")).expect("pin");
        render(&ScriptParams {
            host,
            port: 5403,
            pin: &pin,
            token: &token(),
            ca_der: &ca,
        })
        .expect("render")
    }

    fn bash(script: &str, args: &[&str]) -> Option<std::process::Output> {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("node-pair")
            .args(args)
            .output()
            .ok()
    }

    #[test]
    fn every_field_is_filled_once() {
        for field in [
            "@QNETD_HOST@",
            "@QNETD_URL_HOST@",
            "@QNETD_PORT@",
            "@QNETD_PIN@",
            "@QNETD_TOKEN@",
            "@QNETD_CA_PEM@",
        ] {
            assert_eq!(TEMPLATE.matches(field).count(), 1, "{field}");
        }
        let s = script("192.0.2.1");
        assert!(!s.contains("@QNETD_"), "a field was left");
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.trim_end().ends_with("main \"$@\""));
    }

    /// The values the script sees are exactly the ones given.
    #[test]
    fn values_reach_the_script_intact() {
        let ca = reference("qnetd-cacert.crt");
        for host in ["192.0.2.1", "fd00::5", "qnetd.example.org"] {
            let s = script(host);
            let probe = s.replacen(
                "\nmain \"$@\"\n",
                "\nprintf '%s\\n' \"$QNETD_HOST\" \"$QNETD_URL_HOST\" \"$QNETD_PORT\" \"$QNETD_PIN\" \"$QNETD_TOKEN\" \"$(base_url)\"; printf '%s\\n' \"$QNETD_CA_PEM\"\n",
                1,
            );
            let Some(out) = bash(&probe, &[]) else {
                eprintln!("skipped: bash is not available");
                return;
            };
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).expect("utf8");
            let mut lines = text.lines();
            let pin = spki_pin(&reference("qnetd-server.crt")).expect("pin");
            let url_host = url_host(host);
            assert_eq!(lines.next(), Some(host));
            assert_eq!(lines.next(), Some(url_host.as_str()));
            assert_eq!(lines.next(), Some("5403"));
            assert_eq!(lines.next(), Some(pin.as_str()));
            assert_eq!(lines.next(), Some(token().to_string().as_str()));
            let url = format!("https://{url_host}:5403/pair/{}", token());
            assert_eq!(lines.next(), Some(url.as_str()));
            let pem_text: String = lines.map(|l| format!("{l}\n")).collect();
            let back = CertificateDer::from_pem_slice(pem_text.as_bytes()).expect("pem");
            assert_eq!(back.as_ref(), &ca[..]);
        }
    }

    #[test]
    fn rendered_script_is_shellcheck_clean() {
        let dir = tempfile::tempdir().expect("tmp");
        for (i, host) in ["192.0.2.1", "fd00::5"].into_iter().enumerate() {
            let path = dir.path().join(format!("pair{i}.sh"));
            std::fs::write(&path, script(host)).expect("write");
            let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pair/node-pair.sh");
            for file in [&path, &template] {
                let Ok(out) = Command::new("shellcheck").arg(file).output() else {
                    eprintln!("skipped: shellcheck is not installed (apt-get install shellcheck)");
                    return;
                };
                assert!(
                    out.status.success(),
                    "shellcheck {}:\n{}",
                    file.display(),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }

    #[test]
    fn options_are_parsed_before_anything_runs() {
        let s = script("192.0.2.1");
        let Some(help) = bash(&s, &["--help"]) else {
            eprintln!("skipped: bash is not available");
            return;
        };
        assert!(help.status.success());
        assert!(String::from_utf8_lossy(&help.stdout).contains("--dry-run"));
        let bad = bash(&s, &["--bogus"]).expect("bash");
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));
        assert!(
            bad.stdout.is_empty(),
            "a step ran before the options were checked"
        );
    }

    #[test]
    fn hostile_values_are_refused() {
        let ca = reference("qnetd-cacert.crt");
        let pin = spki_pin(&reference("qnetd-server.crt")).expect("pin");
        let t = token();
        let ok = ScriptParams {
            host: "192.0.2.1",
            port: 5403,
            pin: &pin,
            token: &t,
            ca_der: &ca,
        };
        for host in [
            "",
            "a'b",
            "$(reboot)",
            "`id`",
            "a b",
            "a\nb",
            "a;b",
            "a|b",
            "a/b",
            "[::1]",
            "-oProxyCommand=x",
            "a@b",
            "a\\b",
            "a\"b",
        ] {
            let r = render(&ScriptParams { host, ..ok });
            assert_eq!(r, Err(ScriptError::BadHost(host.to_owned())), "{host:?}");
            assert!(node_command(host, 5403, &pin, &t).is_err());
        }
        for bad_pin in [
            "",
            "sha256//'; reboot; '",
            &pin[..pin.len() - 1],
            &format!("{pin}\n"),
        ] {
            let r = render(&ScriptParams { pin: bad_pin, ..ok });
            assert!(matches!(r, Err(ScriptError::BadPin(_))), "{bad_pin:?}");
        }
        assert_eq!(
            render(&ScriptParams { port: 0, ..ok }),
            Err(ScriptError::BadPort)
        );
        let pem = b"-----BEGIN CERTIFICATE-----\nQNETD_CA_EOF\n";
        for bad_ca in [&b""[..], &pem[..], &ca[..ca.len() - 1]] {
            let r = render(&ScriptParams {
                ca_der: bad_ca,
                ..ok
            });
            assert_eq!(r, Err(ScriptError::BadCa));
        }
        let mut longer = ca.clone();
        longer.extend_from_slice(b"\nQNETD_CA_EOF\nreboot\n");
        assert_eq!(
            render(&ScriptParams {
                ca_der: &longer,
                ..ok
            }),
            Err(ScriptError::BadCa)
        );
    }

    #[test]
    fn shell_quote_round_trips_hostile_strings() {
        let hostile = [
            "",
            "plain",
            "it's",
            "''",
            "$(id)",
            "`id`",
            "a\nb",
            "\\'\\",
            "; rm -rf / #",
            "${HOME}",
            "!!",
            "\t*?[",
        ];
        for s in hostile {
            let Some(out) = bash(&format!("printf %s {}", shell_quote(s)), &[]) else {
                eprintln!("skipped: bash is not available");
                return;
            };
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "{s:?}");
        }
    }

    /// The outcome of the rendered script on the fake node of
    /// `src/pair/testdata/fake-node` (a 2-node plain Corosync cluster).
    struct FakeRun {
        rc: i32,
        stdout: String,
        stderr: String,
        log: String,
        dir: tempfile::TempDir,
    }

    impl FakeRun {
        fn file(&self, path: &str) -> Option<Vec<u8>> {
            std::fs::read(self.dir.path().join("corosync").join(path)).ok()
        }

        /// A file of member `b` (10.0.0.2) under its /etc/corosync.
        fn member_file(&self, path: &str) -> Option<Vec<u8>> {
            std::fs::read(self.dir.path().join("state/node-10.0.0.2").join(path)).ok()
        }

        fn pve_file(&self, path: &str) -> Option<Vec<u8>> {
            std::fs::read(self.dir.path().join("pve").join(path)).ok()
        }
    }

    const CONF_IN: &str = "src/pair/testdata/corosync-conf/plain-two-node.conf";
    const CONF_NEW: &str = "src/pair/testdata/corosync-conf/plain-two-node.add";

    fn fake_run(args: &[&str], env: &[(&str, &str)]) -> Option<FakeRun> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("tmp");
        let script_path = dir.path().join("pair.sh");
        std::fs::write(&script_path, script("192.0.2.10")).expect("write");
        let out = Command::new("bash")
            .arg(root.join("src/pair/testdata/fake-node/run.sh"))
            .arg(&script_path)
            .arg(root.join(CONF_IN))
            .arg(root.join(CONF_NEW))
            .arg(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .ok()?;
        let rc = std::fs::read_to_string(dir.path().join("rc")).ok();
        let Some(rc) = rc.and_then(|r| r.trim().parse().ok()) else {
            eprintln!(
                "skipped: no user+mount namespace for the fake node (unshare -rm): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        };
        Some(FakeRun {
            rc,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            log: std::fs::read_to_string(dir.path().join("state/log")).unwrap_or_default(),
            dir,
        })
    }

    fn original() -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(CONF_IN)).expect("conf")
    }

    fn assert_unchanged(run: &FakeRun) {
        assert_eq!(
            run.file("corosync.conf"),
            Some(original()),
            "{}",
            run.stderr
        );
        assert_eq!(run.file("qdevice/net/nssdb/ca.crt"), None, "{}", run.stderr);
        assert!(!run.log.contains("cfgtool"), "{}", run.log);
        assert!(!run.log.contains("systemctl"), "{}", run.log);
        assert!(!run.stderr.contains("rollback failed"), "{}", run.stderr);
    }

    #[test]
    fn fake_node_pairs() {
        let Some(run) = fake_run(&[], &[]) else {
            return;
        };
        assert_eq!(run.rc, 0, "{}\n{}", run.stdout, run.stderr);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let new = std::fs::read(root.join(CONF_NEW)).expect("new");
        assert_eq!(run.file("corosync.conf"), Some(new.clone()));
        assert_eq!(run.file("corosync.conf.qnetd-bak"), Some(original()));
        assert_eq!(run.file("corosync.conf.qnetd-undo"), Some(new));
        assert!(run.file("qdevice/net/nssdb/cluster.crt").is_some());
        assert!(run.stderr.contains("WARNING: removed two_node"));
        // One progress line per step, all eight.
        let steps: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(steps.len(), 8, "{}", run.stdout);
        assert!(steps[7].starts_with("[8/8] paired"));
        assert!(run.stdout.contains("To undo on this node"));
        // The order: key and request, the signature, the import, then the
        // reload before corosync-qdevice starts.
        let pos = |s: &str| {
            run.log
                .find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{}", run.log))
        };
        assert!(pos("certutil -i -c") < pos("certutil -r -n twonode"));
        assert!(pos("certutil -r -n twonode") < pos("/sign?node=a"));
        assert!(pos("/sign?node=a") < pos("certutil -M -c"));
        assert!(pos("certutil -M -c") < pos("cfgtool -R"));
        assert!(pos("cfgtool -R") < pos("systemctl restart corosync-qdevice"));
        // Every request is pinned.
        for line in run.log.lines().filter(|l| l.starts_with("curl")) {
            assert!(line.contains("--pinnedpubkey sha256//"), "{line}");
            assert!(line.contains("https://192.0.2.10:5403/pair/"), "{line}");
        }
    }

    #[test]
    fn fake_node_dry_run_changes_nothing() {
        let Some(run) = fake_run(&["--dry-run"], &[]) else {
            return;
        };
        assert_eq!(run.rc, 0, "{}", run.stderr);
        assert!(run.stdout.contains("Dry run: nothing was changed."));
        assert!(
            run.stdout.contains("+\t\t\thost: 192.0.2.10"),
            "{}",
            run.stdout
        );
        assert!(!run.log.contains("certutil"), "{}", run.log);
        assert_unchanged(&run);
    }

    #[test]
    fn fake_node_failures_before_the_write_change_nothing() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SIGN_CODE", "409")], "already signed its 2 certificates"),
            (
                &[("CONF_CODE", "409")],
                "a quorum device is already configured",
            ),
            (
                &[("FAIL_IMPORT", "1")],
                "importing the certificate on a failed",
            ),
            (&[("NO_CERTUTIL", "1")], "apt install corosync-qdevice"),
            (&[("OLD_DB", "1")], "run with --force to replace it"),
            (
                &[("DEVICE_HOST", "198.51.100.1")],
                "already has a quorum device (host 198.51.100.1)",
            ),
        ];
        for (env, message) in cases {
            let Some(run) = fake_run(&[], env) else {
                return;
            };
            assert_eq!(run.rc, 1, "{env:?}: {}", run.stderr);
            assert!(run.stderr.contains(message), "{env:?}: {}", run.stderr);
            if !env.iter().any(|(k, _)| *k == "OLD_DB") {
                assert_unchanged(&run);
            }
        }
    }

    #[test]
    fn fake_node_force_restores_the_old_store_on_failure() {
        let env = [("OLD_DB", "1"), ("FAIL_IMPORT", "1")];
        let Some(run) = fake_run(&["--force"], &env) else {
            return;
        };
        assert_eq!(run.rc, 1, "{}", run.stderr);
        assert_eq!(
            run.file("qdevice/net/nssdb/cert9.db"),
            Some(b"old\n".to_vec()),
            "{}",
            run.stderr
        );
        assert_eq!(run.file("corosync.conf"), Some(original()));
        assert!(!run.stderr.contains("rollback failed"), "{}", run.stderr);
        // With --force and no failure the old store is replaced.
        let Some(run) = fake_run(&["--force"], &[("OLD_DB", "1")]) else {
            return;
        };
        assert_eq!(run.rc, 0, "{}", run.stderr);
        assert_eq!(run.file("qdevice/net/nssdb/cert9.db"), None);
        assert!(run.file("qdevice/net/nssdb/cluster.crt").is_some());
        assert!(run.log.contains("corosync.conf?force=1"));
    }

    #[test]
    fn fake_node_already_paired_with_us_refuses_and_changes_nothing() {
        let Some(run) = fake_run(&[], &[("DEVICE_HOST", "192.0.2.10")]) else {
            return;
        };
        // Non-zero, so that `curl ... | bash` reports it: nothing was done.
        assert_eq!(run.rc, 1, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("ERROR: cluster 'twonode' already uses this qnetd (192.0.2.10)"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("Nothing was changed on the cluster."),
            "{}",
            run.stderr
        );
        assert!(!run.log.contains("curl"), "{}", run.log);
        assert_unchanged(&run);
    }

    #[test]
    fn fake_proxmox_node_pairs_every_member() {
        let Some(run) = fake_run(&[], &[("PVE", "1")]) else {
            return;
        };
        assert_eq!(run.rc, 0, "{}\n{}", run.stdout, run.stderr);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let new = std::fs::read(root.join(CONF_NEW)).expect("new");
        assert_eq!(run.pve_file("corosync.conf"), Some(new));
        assert_eq!(run.pve_file("corosync.conf.new"), None);
        assert!(
            run.stdout.contains(", pve mode, /etc/pve/corosync.conf"),
            "{}",
            run.stdout
        );
        // Each member has its own key and certificate; both were signed.
        assert!(run.file("qdevice/net/nssdb/cluster.crt").is_some());
        assert!(run.member_file("qdevice/net/nssdb/cluster.crt").is_some());
        for node in ["a", "b"] {
            assert!(
                run.log.contains(&format!("/sign?node={node}")),
                "{}",
                run.log
            );
        }
        // The member is reached the way PVE::SSHInfo does it.
        assert!(
            run.log
                .contains("ssh -e none -o BatchMode=yes -o HostKeyAlias=b root@10.0.0.2 -- "),
            "{}",
            run.log
        );
        assert!(
            !run.log.contains("HostKeyAlias=a"),
            "the local node goes over ssh"
        );
        let restarts = run
            .log
            .lines()
            .filter(|l| *l == "systemctl restart corosync-qdevice");
        assert_eq!(restarts.count(), 2, "{}", run.log);
        assert!(run.stdout.contains("To undo: pvecm qdevice remove"));
    }

    #[test]
    fn fake_proxmox_failure_rolls_back_every_member() {
        let Some(run) = fake_run(&[], &[("PVE", "1"), ("SIGN_CODE", "409")]) else {
            return;
        };
        assert_eq!(run.rc, 1, "{}", run.stderr);
        assert_eq!(run.pve_file("corosync.conf"), Some(original()));
        assert_eq!(run.file("qdevice/net/nssdb/ca.crt"), None);
        assert_eq!(
            run.member_file("qdevice/net/nssdb/ca.crt"),
            None,
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("rollback: removing the new certificate store on b")
        );
        assert!(!run.stderr.contains("rollback failed"), "{}", run.stderr);
        assert!(!run.log.contains("systemctl"), "{}", run.log);
    }

    #[test]
    fn node_command_shape() {
        let pin = spki_pin(&reference("qnetd-server.crt")).expect("pin");
        let t = token();
        assert_eq!(
            node_command("192.0.2.1", 5403, &pin, &t).expect("cmd"),
            format!("curl -sSk --pinnedpubkey {pin} https://192.0.2.1:5403/pair/{t} | bash")
        );
        assert_eq!(
            node_command("fd00::1", 15403, &pin, &t).expect("cmd"),
            format!("curl -sSk --pinnedpubkey {pin} https://[fd00::1]:15403/pair/{t} | bash")
        );
    }
}
