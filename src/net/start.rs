//! Start-up: everything before the loop's first poll, in the reference's
//! order. [`run`] installs the signal handlers, takes the lock file, sets
//! up TLS (the certificate store, created on first start) and the pairing
//! state, binds the management socket, the qdevice listener and the status
//! panel, registers them with a new poll ([`Server::new`]), logs that the
//! server is ready, sets up MQTT, opens the add-on's first pairing window
//! and tells the service manager; then it runs the loop until a signal or
//! a shutdown request, and says it is stopping.

use std::collections::VecDeque;
use std::sync::Arc;

use mio::{Interest, Poll};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::admission::Admission;
use super::{Clock, LISTENER, LockFile, READ_CHUNK, SIGNALS, Server};
use super::{http, ipc, listen, mqtt, pair, tls};
use crate::cert::store::{CertStore, InitOutcome};
use crate::config::Config;
use crate::core::{Instance, InstanceConfig};
use crate::error::Error;
use crate::proto::TlsSupported;

/// Runs the server until SIGTERM/SIGINT.
///
/// # Errors
/// Startup failures (lock file, listen address, signals); once running,
/// client errors only ever affect that client.
pub fn run(config: &Config) -> Result<(), Error> {
    config.validate()?;
    log::info!(
        "qnetd {} starting (protocol of corosync-qnetd {})",
        env!("CARGO_PKG_VERSION"),
        crate::REFERENCE_VERSION
    );
    // Handlers first: a SIGTERM during start-up (key generation can take a
    // while on a small board) is then served by the loop, not the default
    // action.
    let signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| Error::io("install signal handlers", e))?;
    let _lock = LockFile::acquire(&config.advanced.lock_file)?;
    let revoked = crate::cert::policy::RevokedSerials::default();
    let tls_config = tls_setup(config, &revoked)?;
    let pairing = match tls_config {
        Some(_) => Some(pair::Pairing::new(config, revoked)?),
        None => None,
    };
    log::debug!("Initializing local socket");
    let ipc = ipc::Ipc::bind(config)?;
    log::debug!("Creating listening socket");
    let listener = listen::bind(config)?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("read listen address", e))?;
    let http = http::Http::bind(config)?;
    let mut server = Server::new(config, listener, ipc, tls_config, signals, http)?;
    if let Some(reason) = config.unauthenticated_reason() {
        log::warn!("{reason}");
    }
    if let (Some(h), Some(p)) = (server.http.as_mut(), pairing.as_ref()) {
        h.note(server.clock.now().as_millis(), Vec::new(), p.paired());
    }
    server.pairing = pairing;
    log::info!(
        "QNetd ready to provide service: listening on {local} (tls={}, client certificate required={})",
        tls_name(config),
        config.client_cert_required
    );
    server.mqtt = mqtt::Mqtt::setup(&config.mqtt, config.listen_addr.as_deref(), config.port)
        .map_err(Error::Config)?;
    if let Some(h) = server.http.as_ref() {
        h.log_ready();
    }
    if let (Some(auto), Some(p)) = (&config.auto_pair, server.pairing.as_mut()) {
        p.auto_open(auto.address.clone(), server.clock.now());
    }
    crate::sys::notify::ready();
    let outcome = server.run();
    crate::sys::notify::stopping();
    outcome
}

/// Opens the certificate store (creating it on first start) and builds the
/// TLS server configuration, unless TLS is off.
fn tls_setup(
    config: &Config,
    revoked: &crate::cert::policy::RevokedSerials,
) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
    if config.tls == TlsSupported::Unsupported {
        return Ok(None);
    }
    let dir = &config.advanced.nss_db_dir;
    let store = CertStore::open(dir);
    match store.ensure_initialized() {
        Ok(InitOutcome::Created) => log::info!(
            "Created a new certificate store in {}; copy the CA certificate {} to the cluster nodes",
            dir.display(),
            store.ca_cert_path().display()
        ),
        Ok(InitOutcome::AlreadyExists) => {
            log::debug!("Using the certificate store in {}", dir.display());
        }
        Err(e) => return Err(Error::Tls(e.into())),
    }
    let cfg = tls::server_config_revocable(&store, config.client_cert_required, revoked)?;
    Ok(Some(cfg))
}

fn tls_name(config: &Config) -> &'static str {
    match config.tls {
        TlsSupported::Unsupported => "off",
        TlsSupported::Supported => "on",
        TlsSupported::Required | TlsSupported::Unknown(_) => "req",
    }
}

impl Server {
    fn new(
        config: &Config,
        mut listener: mio::net::TcpListener,
        mut ipc: ipc::Ipc,
        tls_config: Option<Arc<rustls::ServerConfig>>,
        mut signals: Signals,
        mut http: Option<http::Http>,
    ) -> Result<Self, Error> {
        let poll = Poll::new().map_err(|e| Error::io("create poll", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("register listener", e))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Error::io("register signals", e))?;
        ipc.register(poll.registry())
            .map_err(|e| Error::io("register local socket", e))?;
        if let Some(h) = http.as_mut() {
            h.register(poll.registry())
                .map_err(|e| Error::io("register status panel", e))?;
        }
        Ok(Self {
            poll,
            listener,
            signals,
            ipc,
            instance: Instance::new(InstanceConfig::from(config)),
            conns: Vec::new(),
            ready: VecDeque::new(),
            admission: Admission::new(config),
            clock: Clock::new(),
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            tls_config,
            http,
            pairing: None,
            accept_failed: false,
            mqtt: None,
        })
    }
}
