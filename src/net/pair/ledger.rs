//! What pairing did that others read ([`Ledger`]): the steps queued for
//! the loop (the status panel's event list, MQTT) and the paired clusters
//! (those with live certificates in the index, as this daemon signed and
//! unpaired them). Signing a node's certificate goes through here, so that
//! each signing is one audit line, one step and its cluster paired.

use std::collections::BTreeSet;

use crate::cert::store::CertStore;
use crate::core::PeerAddr;
use crate::panel::feed::Event;

/// What pairing did that others read: the steps for the loop and the
/// paired clusters.
#[derive(Default)]
pub(super) struct Ledger {
    /// Pairing steps since the loop last asked ([`Pairing::take_steps`](super::Pairing::take_steps)).
    pub(super) steps: Vec<Event>,
    /// The clusters with live certificates ([`Pairing::paired`](super::Pairing::paired)).
    pub(super) paired: BTreeSet<String>,
}

impl Ledger {
    /// Signs `csr` for `cluster` and `node` ([`CertStore::sign_and_record`])
    /// on behalf of the window `token` (`-` for none) and the requester
    /// `addr`: the audit line, the step, the cluster paired. The
    /// certificate (DER) or the error's words.
    pub(super) fn sign(
        &mut self,
        store: &CertStore,
        csr: &[u8],
        cluster: &str,
        node: &str,
        token: &str,
        addr: PeerAddr,
    ) -> Result<Vec<u8>, String> {
        let s = store
            .sign_and_record(csr, cluster, node)
            .map_err(|e| e.to_string())?;
        log::info!(
            "pairing: signed certificate cluster={cluster} node={node} serial={} addr={addr} token={token}",
            s.serial,
        );
        self.steps.push(Event::PairSigned {
            token: token.to_owned(),
            cluster: cluster.to_owned(),
            node: node.to_owned(),
            serial: s.serial,
            address: addr.to_string(),
        });
        if !self.paired.contains(cluster) {
            self.paired.insert(cluster.to_owned());
        }
        Ok(s.der)
    }
}
