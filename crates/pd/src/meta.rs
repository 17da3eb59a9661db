//! PD's metadata requests: bootstrap, stores, and (through the cluster view) regions and
//! heartbeats. Bootstrap and stores are read and written through the PD region on every
//! request; nothing here trusts a cache for a decision.

use minikv_proto::metapb::{Region, Store};
use minikv_proto::pdpb::{PdError, PdRequest, PdResponse};

use crate::storage::{BootstrapRecord, Storage, Swap};

/// The metadata half of a PD node's service.
#[derive(Debug, Default)]
pub struct Meta {}

fn invalid(reason: String) -> PdError {
    PdError::Invalid { reason }
}

/// Refuses a bootstrap that could not start a cluster: the first region must cover every key
/// and have a peer on the bootstrapping store.
fn check_bootstrap(store: &Store, region: &Region) -> Result<(), PdError> {
    if store.id == 0 {
        return Err(invalid("bootstrap: store id 0".into()));
    }
    if region.id == 0 || !region.start_key.is_empty() || !region.end_key.is_empty() {
        return Err(invalid(format!(
            "bootstrap: the first region must have an id and cover every key, got {region:?}"
        )));
    }
    if region.peer_on_store(store.id).is_none() {
        return Err(invalid(format!(
            "bootstrap: region {} has no peer on store {}",
            region.id, store.id
        )));
    }
    Ok(())
}

impl Meta {
    /// Serves one metadata request.
    pub async fn serve(
        &mut self,
        storage: &mut Storage,
        request: PdRequest,
        _now_ms: u64,
    ) -> Result<PdResponse, PdError> {
        match request {
            PdRequest::IsBootstrapped => {
                let bootstrapped = storage.bootstrap_record().await?.is_some();
                Ok(PdResponse::Bootstrapped { bootstrapped })
            }
            PdRequest::Bootstrap { store, region } => {
                check_bootstrap(&store, &region)?;
                let record = BootstrapRecord { store, region };
                match storage.bootstrap(&record).await? {
                    Swap::Done => {}
                    // Our own earlier attempt, whose answer was lost: finish it.
                    Swap::Lost { found: Some(found) } if found == record => {}
                    Swap::Lost { .. } => return Err(PdError::AlreadyBootstrapped),
                }
                storage.put_store(&record.store).await?;
                storage.put_region(&record.region).await?;
                Ok(PdResponse::Ok)
            }
            PdRequest::PutStore { store } => {
                if store.id == 0 {
                    return Err(invalid("put store: store id 0".into()));
                }
                self.require_bootstrapped(storage).await?;
                storage.put_store(&store).await?;
                Ok(PdResponse::Ok)
            }
            PdRequest::GetStore { store_id } => {
                Ok(PdResponse::Store { store: storage.store(store_id).await? })
            }
            PdRequest::GetAllStores => Ok(PdResponse::Stores { stores: storage.stores().await? }),
            PdRequest::Tso { .. } | PdRequest::AllocId => {
                unreachable!("served by the service itself")
            }
            other => Err(invalid(format!("{other:?}: region requests are not served yet"))),
        }
    }

    async fn require_bootstrapped(&mut self, storage: &mut Storage) -> Result<(), PdError> {
        match storage.bootstrap_record().await? {
            Some(_) => Ok(()),
            None => Err(PdError::NotBootstrapped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minikv_proto::metapb::Peer;

    #[test]
    fn a_bootstrap_must_cover_every_key_from_the_bootstrapping_store() {
        let store = Store { id: 1, address: "s1".into() };
        let mut region = Region {
            id: 2,
            peers: vec![Peer { id: 3, store_id: 1, ..Default::default() }],
            ..Default::default()
        };
        assert_eq!(check_bootstrap(&store, &region), Ok(()));
        region.end_key = b"m".to_vec();
        assert!(matches!(check_bootstrap(&store, &region), Err(PdError::Invalid { .. })));
        region.end_key.clear();
        region.peers[0].store_id = 9;
        let err = check_bootstrap(&store, &region).unwrap_err();
        assert!(err.to_string().contains("no peer on store 1"), "{err}");
    }
}
