//! Pairing a cluster with this server: the sans-IO parts.
//!
//! `qnetd pair` opens a pairing window and prints one command; run as root
//! on one Proxmox VE node (or on every node of a plain Corosync cluster), it
//! fetches a script from this server over HTTPS on the qnetd port, with the
//! server authenticated by the pin of its public key and the node by the
//! window's token, and does what `pvecm qdevice setup` does without SSH to
//! this server. Nothing here does I/O or reads a clock:
//!
//! * [`token`]: pairing windows and `ID.SECRET` tokens (hashed, compared in
//!   constant time, bound to one cluster name, N certificates, a lifetime,
//!   closed after too many wrong secrets; the name-collision guard).
//! * [`pin`]: the SPKI pin of the server certificate for
//!   `curl --pinnedpubkey`.
//! * [`script`]: the node command and the node script it downloads.
//! * [`http`]: the endpoint's request parser and handler (httparse).
//! * [`corosync_conf`]: the corosync.conf editor: the server, not the
//!   script, edits the file (add / remove `quorum.device`, raise
//!   `config_version`, drop `two_node` & co. with warnings).
//!
//! # HTTP API of the pairing endpoint
//!
//! HTTPS (HTTP/1.1, no client certificate, the server's "Qnetd Server"
//! certificate) on the qnetd port, told apart from the qdevice protocol by
//! the first byte (0x16 TLS, 0x00 qdevice). `TOKEN` is `ID.SECRET`; every
//! request under `/pair/TOKEN` is checked with
//! [`token::PairingWindow::authenticate`]. Every other path, method or
//! malformed token answers 404. Bodies are bounded (below); errors are
//! `text/plain`, one line, the `Display` of the refusal, never the secret,
//! except on `GET /pair/TOKEN`: the node command pipes whatever it gets
//! into bash (curl without `-f`), so a refusal there is a `text/x-shellscript`
//! that prints `ERROR: qnetd refused the pairing (HTTP N): REASON` on stderr
//! and exits 1.
//!
//! | method and path | request body | success (200) |
//! |---|---|---|
//! | `GET /pair/TOKEN` | — | `text/x-shellscript`: [`script::render`] |
//! | `GET /pair/TOKEN/ca.crt` | — | `application/x-pem-file`: the CA certificate |
//! | `GET /pair/TOKEN/status` | — | `text/plain` lines `key=value`: `cluster`, `nodes`, `signed`, `expires_in` (seconds) |
//! | `POST /pair/TOKEN/corosync.conf` (`?force=1`) | the node's corosync.conf, ≤ [`corosync_conf::MAX_CONF_LEN`] | `text/plain`: the file after [`corosync_conf::add_device`] with this server's address and port; one `X-Qnetd-Warning:` header per warning, `X-Qnetd-Algorithm: ffsplit\|lms`, `X-Qnetd-Config-Version: N` |
//! | `POST /pair/TOKEN/corosync.conf/undo` | the same original file | `text/plain`: [`corosync_conf::raise_config_version`] by 2 (the plain-Corosync undo file) |
//! | `POST /pair/TOKEN/sign?node=NAME` | the DER PKCS#10 request of `corosync-qdevice-net-certutil -r` (`qdevice-net-node.crq`), ≤ 16 KiB | `application/pkix-cert`: the DER certificate for the bound cluster name, what `-M -c` imports |
//!
//! The `corosync.conf` POST binds the window ([`token::Authorized::bind_cluster`])
//! to the file's `totem.cluster_name` and its node count, so it comes
//! first; `sign` refuses before that ([`token::Refusal::NotBound`]), checks
//! the request names the bound cluster, and counts the certificate
//! ([`token::Authorized::record_signed`]); `NAME` (`A-Z a-z 0-9 . _ -`) is
//! only for the audit log line. Status codes:
//!
//! | status | when |
//! |---|---|
//! | 400 | a body that is not a corosync.conf, a certificate request, or a cluster name that is not supported |
//! | 403 | right id, wrong secret ([`token::Refusal::BadSecret`]) |
//! | 404 | any other path or method, a malformed token, an id with no open window |
//! | 409 | already configured (`quorum.device` without `force`), another cluster name, a name with live certificates, too many nodes, not bound yet, all certificates signed |
//! | 410 | window expired, closed, or locked out after too many wrong secrets |
//! | 413 | body over its limit |
//!
//! # What the node script does
//!
//! One progress line per step (`src/pair/node-pair.sh`): checks (root; the
//! corosync tools; Proxmox VE if `/etc/pve/corosync.conf`
//! exists, else plain Corosync with `/etc/corosync/corosync.conf`; cluster
//! name, nodelist and membership from `corosync-cmapctl`; every node
//! online; no device yet — on a cluster already paired with this server it
//! says so, changes nothing and exits 1 — unless `--force`); `corosync-qdevice-net-certutil`
//! on every node, else the `apt install corosync-qdevice` line and stop;
//! no certificate store yet unless `--force`; the corosync.conf POST (the
//! server's refusal stops here); `--dry-run` prints the plan and the diff
//! and stops. Then on every node (Proxmox: members over `/usr/bin/ssh -e
//! none -o BatchMode=yes -o HostKeyAlias=NODE`, as `PVE::SSHInfo`; plain:
//! this node) `-i -c CA`, `-r -n CLUSTER`, the request POSTed to `sign`,
//! `-M -c CERT`; any failure so far removes the new stores and restores
//! ones moved aside. Then the write: the file checked unchanged, written as
//! `corosync.conf.new` and renamed (plain Corosync keeps
//! `corosync.conf.qnetd-bak` and the undo file `corosync.conf.qnetd-undo`);
//! `corosync-cfgtool -R` (on Proxmox after pmxcfs copied the file), then
//! `systemctl enable` + `restart corosync-qdevice` on every node; then it
//! waits for `corosync-quorumtool -s` to show `Qdevice` and `A,V` for the
//! paired nodes. A failure after the write prints how to undo
//! (`pvecm qdevice remove`, or the undo file).
pub mod corosync_conf;
pub mod http;
pub mod pin;
pub mod script;
pub mod token;
