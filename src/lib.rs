//! qnetd: a Corosync QNetd server.
#![doc(test(attr(deny(warnings))))]

pub mod certname;
pub mod certstore;
pub mod certutil;
pub mod limits;
pub mod net;
pub mod proto;
