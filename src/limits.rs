//! Every capacity and protocol constant in one place.
//!
//! Defaults cite `qdevices/qnet-config.h` of the reference.

/// Default TCP port (`QNETD_DEFAULT_HOST_PORT`).
pub const DEFAULT_PORT: u16 = 5403;

/// Default largest message accepted from a client, header included
/// (`QNETD_DEFAULT_MAX_CLIENT_RECEIVE_SIZE`, 1 << 15). The 3.0.3 client
/// refuses a server that advertises less.
pub const DEFAULT_MAX_CLIENT_RECEIVE_SIZE: usize = 1 << 15;

/// Largest number of nodes in a corosync cluster (`PROCESSOR_COUNT_MAX` in
/// corosync's `totem.h`): the most NODE_INFOs a message may carry, and the
/// most members a cluster may have. The reference accepts longer lists
/// (as many as fit in a message, 2,730 by default); refusing them bounds
/// the work per message (issue 11, finding 3).
pub const MAX_NODES: usize = 384;

/// Largest number of nodes the engine decodes from one node list.
pub const MAX_DECODED_NODES: usize = MAX_NODES;

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

/// Default listen backlog. The reference uses 10
/// (`QNETD_DEFAULT_LISTEN_BACKLOG`), which drops connections when many
/// nodes reconnect at once (after a qnetd restart, say); the kernel caps
/// this value at `net.core.somaxconn`.
pub const DEFAULT_LISTEN_BACKLOG: i32 = 1024;

/// Bytes read from a socket per read call.
pub const READ_CHUNK: usize = 16 * 1024;

const _: () = assert!(DEFAULT_MAX_CLIENT_RECEIVE_SIZE <= u32::MAX as usize);
