//! The Home Assistant add-on's other files: the prebuilt image and URLs from
//! `release.env`, icon and logo sizes, translations, the Dockerfile, the
//! AppArmor profile, and the repository and presentation files.

use super::addon::{config, keys, read, root, yaml};

/// `release.env` holds the owner, image and URLs (scripts/release-env.sh
/// writes them into the files); `config.yaml` names the prebuilt image.
fn release_env(key: &str) -> String {
    read("release.env")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("release.env: {key}"))
        .to_string()
}

#[test]
fn prebuilt_image_and_urls_come_from_release_env() {
    let c = config();
    let image = c["image"].as_str().expect("config.yaml: image");
    assert_eq!(image, release_env("QNETD_IMAGE"));
    // A registry path: host/owner/name, lower case (OCI references).
    assert_eq!(image.split('/').count(), 3, "{image}");
    assert!(
        !image.contains(':'),
        "{image}: the Supervisor adds the version tag"
    );
    assert_eq!(image, image.to_ascii_lowercase());
    let url = release_env("QNETD_URL");
    assert_eq!(c["url"].as_str(), Some(url.as_str()));
    assert!(url.starts_with("https://github.com/") && !url.contains("example"));
    let r = yaml("repository.yaml");
    assert_eq!(r["url"].as_str(), Some(url.as_str()));
    assert_eq!(
        r["maintainer"].as_str(),
        Some(release_env("QNETD_MAINTAINER").as_str())
    );
    assert_eq!(
        release_env("QNETD_REFERENCE_VERSION"),
        qnetd::REFERENCE_VERSION
    );
    assert_eq!(env!("CARGO_PKG_REPOSITORY"), url);
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(rel: &str) -> (u32, u32) {
    let b = std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(b.len() > 24, "{rel}: too short");
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{rel}: PNG signature");
    assert_eq!(&b[12..16], b"IHDR", "{rel}: IHDR first");
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn icon_and_logo_sizes() {
    // developers.home-assistant: icon 128x128 (1:1), logo 250x100 (~2.5:1).
    assert_eq!(png_size("addon/icon.png"), (128, 128));
    assert_eq!(png_size("addon/logo.png"), (250, 100));
}

#[test]
fn translations_cover_every_option_and_the_port() {
    let c = config();
    let t = yaml("addon/translations/en.yaml");
    assert_eq!(keys(&t["configuration"]), keys(&c["schema"]));
    for (k, v) in t["configuration"].as_hash().unwrap() {
        assert!(v["name"].as_str().is_some(), "{k:?}: name");
        assert!(v["description"].as_str().is_some(), "{k:?}: description");
    }
    assert_eq!(keys(&t["network"]), keys(&c["ports"]));
}

#[test]
fn dockerfile_is_scratch_with_exec_form_commands() {
    let d = read("addon/Dockerfile");
    let lines: Vec<&str> = d
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let text = lines.join("\n");
    assert!(lines.contains(&"ARG BUILD_ARCH=amd64"));
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("FROM "))
            .all(|l| l.starts_with("FROM scratch") || l.starts_with("FROM bin-")),
        "only scratch stages"
    );
    // One stage per arch of config.yaml, mapping the HA arch to our binary.
    for (ha, ours) in [("amd64", "x86_64"), ("aarch64", "aarch64")] {
        assert!(text.contains(&format!(
            "FROM scratch AS bin-{ha}\nCOPY qnetd-{ours} /qnetd"
        )));
    }
    assert!(text.contains(r#"CMD ["/qnetd", "healthcheck"]"#));
    assert!(text.contains(r#"ENTRYPOINT ["/qnetd", "--options", "/data/options.json"]"#));
    for label in [
        "io.hass.version=",
        "io.hass.type=\"app\"",
        "io.hass.arch=\"${BUILD_ARCH}\"",
        "org.opencontainers.image.title=",
        "org.opencontainers.image.version=",
        "org.opencontainers.image.source=",
        "org.opencontainers.image.licenses=\"MIT\"",
        "org.opencontainers.image.revision=",
        "qnetd.reference-version=\"corosync-qnetd ${QNETD_REFERENCE_VERSION}\"",
    ] {
        assert!(text.contains(label), "label {label}");
    }
    assert!(!text.contains("RUN "), "scratch has no shell");
}

#[test]
fn apparmor_profile_is_named_after_the_slug_and_tight() {
    let p = read("addon/apparmor.txt");
    assert!(p.contains("profile qnetd flags=(attach_disconnected,mediate_deleted)"));
    let rules: Vec<&str> = p
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "network inet stream,",
        "network inet6 stream,",
        "/qnetd mrix,",
        "/data/** rwk,",
    ] {
        assert!(rules.contains(&needed), "missing rule {needed}");
    }
    for broad in [
        "capability,",
        "file,",
        "network,",
        "signal,",
        "ptrace,",
        "/** ",
    ] {
        assert!(
            !rules.iter().any(|r| r.starts_with(broad)),
            "allow-all rule {broad}"
        );
    }
}

#[test]
fn repository_and_presentation_files() {
    let r = yaml("repository.yaml");
    assert!(r["name"].as_str().is_some_and(|n| !n.is_empty()));
    // Keep a Changelog: an Unreleased section, then `## [version] - date`,
    // each version linked at the bottom.
    let changelog = read("CHANGELOG.md");
    assert_eq!(changelog, read("addon/CHANGELOG.md"));
    assert!(changelog.contains("keepachangelog.com"));
    assert!(changelog.contains("## [Unreleased]"));
    let version = env!("CARGO_PKG_VERSION");
    let heading = changelog
        .lines()
        .find(|l| l.starts_with(&format!("## [{version}] - ")))
        .unwrap_or_else(|| panic!("CHANGELOG: no ## [{version}] - YYYY-MM-DD"));
    let date = &heading[heading.len() - 10..];
    assert!(date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 {
        b == b'-'
    } else {
        b.is_ascii_digit()
    }));
    assert!(changelog.contains(&format!("\n[{version}]: ")));
    for line in changelog.lines().filter(|l| l.starts_with("### ")) {
        assert!(
            [
                "Added",
                "Changed",
                "Deprecated",
                "Removed",
                "Fixed",
                "Security"
            ]
            .contains(&&line[4..]),
            "{line}: not a Keep a Changelog section"
        );
    }
    // License: the crate's, with the full text in LICENSE and a DOCS line.
    assert_eq!(env!("CARGO_PKG_LICENSE"), "MIT");
    assert!(read("LICENSE").starts_with("MIT License"));
    let docs = read("addon/DOCS.md");
    for needed in [
        "corosync-qdevice-net-certutil",
        "qnetd certutil",
        "quorum {",
        "TCP",
        "## License\n\nMIT",
        // The Supervisor rejects a bad enum value before the start.
        "value must be one of ['off', 'on', 'required']",
        // The version policy: ours and the reference's.
        &format!(
            "qnetd {version} starting (protocol of corosync-qnetd {})",
            qnetd::REFERENCE_VERSION
        ),
    ] {
        assert!(docs.contains(needed), "DOCS.md mentions {needed}");
    }
    assert!(!read("addon/README.md").is_empty());
}
