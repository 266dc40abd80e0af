//! The TCP listener (`nss_sock_create_listen_socket`).
//!
//! Without `-l` the server binds the IPv6 wildcard with `IPV6_V6ONLY` off,
//! so it also accepts IPv4 clients (as `::ffff:a.b.c.d`); `-4` binds the
//! IPv4 wildcard and `-6` the IPv6 wildcard only. With `-l HOST` the name is
//! resolved and the first address that binds is used. Only a host without
//! IPv6 makes the wildcard fall back to IPv4 (logged once it worked); a port
//! in use is one error naming the address tried. `SO_REUSEADDR` is set
//! and the backlog is the `listen_backlog` setting.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, IpVersion};
use crate::error::Error;

fn bind_one(
    addr: SocketAddr,
    v6_only: Option<bool>,
    backlog: i32,
) -> std::io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if let (Some(only), SocketAddr::V6(_)) = (v6_only, addr) {
        socket.set_only_v6(only)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Whether binding the IPv6 wildcard failed because the host has no IPv6
/// (no `AF_INET6`, or IPv6 disabled), the one case worth trying IPv4.
fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
    ) || matches!(e.raw_os_error(), Some(97 | 93 | 99))
}

/// Binds the listening socket described by `config`.
///
/// # Errors
/// [`Error::Bind`] naming the address when nothing could be bound.
pub(super) fn bind(config: &Config) -> Result<mio::net::TcpListener, Error> {
    let port = config.port;
    let backlog = config.advanced.listen_backlog;
    let Some(host) = config.listen_addr.as_deref() else {
        return match config.ip_version {
            IpVersion::V4 => {
                let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
                bind_one(addr, None, backlog).map_err(|source| Error::Bind {
                    addr: addr.to_string(),
                    source,
                })
            }
            IpVersion::V6 => {
                let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
                bind_one(addr, Some(true), backlog).map_err(|source| Error::Bind {
                    addr: addr.to_string(),
                    source,
                })
            }
            IpVersion::Any => {
                let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
                let e6 = match bind_one(addr, Some(false), backlog) {
                    Ok(l) => return Ok(l),
                    // The port is taken (or forbidden): IPv4 would fail
                    // the same way, so say only what failed.
                    Err(e) if !ipv6_unavailable(&e) => {
                        return Err(Error::Bind {
                            addr: addr.to_string(),
                            source: e,
                        });
                    }
                    Err(e) => e,
                };
                // A host without IPv6 (some containers): fall back to IPv4,
                // and say so only once it worked.
                let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
                let l = bind_one(v4, None, backlog).map_err(|source| Error::Bind {
                    addr: format!("{v4} (and {addr}: {e6})"),
                    source,
                })?;
                log::warn!("Can't listen on {addr} ({e6}); listening on {v4} only");
                Ok(l)
            }
        };
    };
    let candidates: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| Error::Bind {
            addr: format!("{host}:{port}"),
            source,
        })?
        .filter(|a| match config.ip_version {
            IpVersion::Any => true,
            IpVersion::V4 => a.is_ipv4(),
            IpVersion::V6 => a.is_ipv6(),
        })
        .collect();
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "no address of the requested IP version",
    );
    for addr in candidates {
        match bind_one(addr, None, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(Error::Bind {
        addr: format!("{host}:{port}"),
        source: last,
    })
}
