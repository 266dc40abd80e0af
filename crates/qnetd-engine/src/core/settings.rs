//! What the engine is configured with: [`InstanceConfig`], and the
//! reference's defaults and bounds for it.
//!
//! Defaults cite `qdevices/qnet-config.h` of the reference. The shell fills
//! an [`InstanceConfig`] from its own options (command line, add-on
//! options); the engine knows nothing of where they come from.

use crate::proto::TlsSupported;

/// Default largest message accepted from a client, header included
/// (`QNETD_DEFAULT_MAX_CLIENT_RECEIVE_SIZE`, 1 << 15). The 3.0.3 client
/// refuses a server that advertises less.
pub const DEFAULT_MAX_CLIENT_RECEIVE_SIZE: usize = 1 << 15;

/// Default largest message built for a client
/// (`QNETD_DEFAULT_MAX_CLIENT_SEND_SIZE`).
pub const DEFAULT_MAX_CLIENT_SEND_SIZE: usize = 1 << 15;

/// Default number of messages queued per client
/// (`QNETD_DEFAULT_MAX_CLIENT_SEND_BUFFERS`).
pub const DEFAULT_MAX_CLIENT_SEND_BUFFERS: usize = 32;

/// Smallest accepted `max_client_send_size` / `max_client_receive_size`.
pub const MIN_CLIENT_MSG_SIZE: usize = 16;

/// Smallest accepted `max_client_send_buffers`.
pub const MIN_CLIENT_SEND_BUFFERS: usize = 2;

/// Default `heartbeat_interval_min` in ms.
pub const DEFAULT_HEARTBEAT_INTERVAL_MIN: u32 = 1000;

/// Default `heartbeat_interval_max` in ms.
pub const DEFAULT_HEARTBEAT_INTERVAL_MAX: u32 = 120_000;

/// Heartbeat assumed before INIT, for the pre-INIT dead-peer timeout. This
/// is the compiled-in default, not the `heartbeat_interval_max` setting
/// (`QNETD_DEFAULT_HEARTBEAT_INTERVAL_MAX`).
pub const PRE_INIT_HEARTBEAT_INTERVAL: u32 = 120_000;

/// Default dead-peer-detection coefficient
/// (`QNETD_DEFAULT_DPD_INTERVAL_COEFFICIENT`).
pub const DEFAULT_DPD_INTERVAL_COEFFICIENT: f64 = 1.5;

/// Longest timer the reference's timer list accepts, in ms
/// (`TIMER_LIST_MAX_INTERVAL`, 5 hours).
pub const TIMER_MAX_INTERVAL_MS: u64 = 18_000_000;

const _: () = assert!(DEFAULT_MAX_CLIENT_RECEIVE_SIZE <= u32::MAX as usize);

/// The settings the protocol engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    /// TLS mode advertised and enforced.
    pub tls: TlsSupported,
    /// Whether TLS clients must present a certificate matching their cluster.
    pub client_cert_required: bool,
    /// Maximum number of connections, 0 = unlimited.
    pub max_clients: usize,
    /// Messages queued per client before it is disconnected.
    pub max_client_send_buffers: usize,
    /// Largest message sent, header included.
    pub max_client_send_size: usize,
    /// Largest message accepted, header included.
    pub max_client_receive_size: usize,
    /// Smallest heartbeat a client may use, in ms.
    pub heartbeat_interval_min: u32,
    /// Largest heartbeat a client may use, in ms.
    pub heartbeat_interval_max: u32,
    /// Whether silent clients are dropped.
    pub dpd_enabled: bool,
    /// DPD timeout as a multiple of the heartbeat.
    pub dpd_interval_coefficient: f64,
    /// Server default of the ffsplit keep-active-partition tie-breaker.
    pub keep_active_partition_tie_breaker: bool,
}

impl Default for InstanceConfig {
    /// The reference's defaults: TLS on, client certificates required, no
    /// client limit, DPD on.
    fn default() -> Self {
        Self {
            tls: TlsSupported::Supported,
            client_cert_required: true,
            max_clients: 0,
            max_client_send_buffers: DEFAULT_MAX_CLIENT_SEND_BUFFERS,
            max_client_send_size: DEFAULT_MAX_CLIENT_SEND_SIZE,
            max_client_receive_size: DEFAULT_MAX_CLIENT_RECEIVE_SIZE,
            heartbeat_interval_min: DEFAULT_HEARTBEAT_INTERVAL_MIN,
            heartbeat_interval_max: DEFAULT_HEARTBEAT_INTERVAL_MAX,
            dpd_enabled: true,
            dpd_interval_coefficient: DEFAULT_DPD_INTERVAL_COEFFICIENT,
            keep_active_partition_tie_breaker: false,
        }
    }
}
