//! PD's state in its own Raft-replicated region, as keys: the TSO bound, the ID window's end,
//! the bootstrap record, stores, regions and running operators. Every access goes through the raw client to the
//! region's leader (reads by ReadIndex), as PD goes through etcd.

use minikv_client::{Error as ClientError, RawClient};
use minikv_proto::metapb::{Region, RegionId, Store, StoreId};
use minikv_proto::pdpb::PdError;
use serde::{Deserialize, Serialize};

use crate::schedule::Operator;
use crate::tso::{decode_bound, encode_bound};

const TSO_BOUND_KEY: &[u8] = b"pd/tso";
const ID_END_KEY: &[u8] = b"pd/id";
const CLUSTER_KEY: &[u8] = b"pd/cluster";
const STORE_PREFIX: &str = "pd/store/";
const REGION_PREFIX: &str = "pd/region/";
const OPERATOR_PREFIX: &str = "pd/operator/";

/// Written once, by the bootstrap: the cluster's first store and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapRecord {
    pub store: Store,
    pub region: Region,
}

/// How a compare-and-swap ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap<T> {
    Done,
    /// The key held `found` instead.
    Lost {
        found: Option<T>,
    },
}

/// Why a storage access failed. `Unknown` is the only one after which a write may have
/// applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("PD storage: outcome unknown: {0}")]
    Unknown(String),
    #[error("PD storage: {0}")]
    Failed(String),
    #[error("PD storage holds a bad value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl From<StorageError> for PdError {
    fn from(e: StorageError) -> PdError {
        PdError::Unavailable { reason: e.to_string() }
    }
}

fn failed(e: ClientError) -> StorageError {
    if e.is_unknown() {
        StorageError::Unknown(e.to_string())
    } else {
        StorageError::Failed(e.to_string())
    }
}

fn store_key(id: StoreId) -> Vec<u8> {
    format!("{STORE_PREFIX}{id:020}").into_bytes()
}

fn region_key(id: RegionId) -> Vec<u8> {
    format!("{REGION_PREFIX}{id:020}").into_bytes()
}

/// The end of a prefix's key range.
fn operator_key(region_id: RegionId) -> Vec<u8> {
    format!("{OPERATOR_PREFIX}{region_id:020}").into_bytes()
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    end
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T, StorageError> {
    minikv_proto::decode(value).map_err(|e| StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    minikv_proto::encode(value).expect("PD records encode")
}

/// PD's typed view of its region.
#[derive(Debug)]
pub struct Storage {
    raw: RawClient,
}

impl Storage {
    pub fn new(raw: RawClient) -> Storage {
        Storage { raw }
    }

    /// The raw client (its region cache says which PD node leads).
    pub fn raw(&self) -> &RawClient {
        &self.raw
    }

    /// The raw client, to ask a store directly (see `RawClient::locate_at`).
    pub fn raw_mut(&mut self) -> &mut RawClient {
        &mut self.raw
    }

    async fn read_u64(&mut self, key: &[u8]) -> Result<Option<u64>, StorageError> {
        match self.raw.get(key).await.map_err(failed)? {
            None => Ok(None),
            Some(v) => decode_bound(&v).map(Some).map_err(|reason| StorageError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason,
            }),
        }
    }

    async fn swap_u64(
        &mut self,
        key: &[u8],
        expected: Option<u64>,
        new: u64,
    ) -> Result<Swap<u64>, StorageError> {
        let expected = expected.map(encode_bound);
        let (done, found) = self
            .raw
            .cas(key, expected.as_deref(), Some(&encode_bound(new)))
            .await
            .map_err(failed)?;
        if done {
            return Ok(Swap::Done);
        }
        let found = match found {
            None => None,
            Some(v) => Some(decode_bound(&v).map_err(|reason| StorageError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason,
            })?),
        };
        Ok(Swap::Lost { found })
    }

    /// The saved TSO bound (milliseconds), read linearizably.
    pub async fn tso_bound(&mut self) -> Result<Option<u64>, StorageError> {
        self.read_u64(TSO_BOUND_KEY).await
    }

    pub async fn swap_tso_bound(
        &mut self,
        expected: Option<u64>,
        new_ms: u64,
    ) -> Result<Swap<u64>, StorageError> {
        self.swap_u64(TSO_BOUND_KEY, expected, new_ms).await
    }

    /// The end of the IDs claimed so far.
    pub async fn id_end(&mut self) -> Result<Option<u64>, StorageError> {
        self.read_u64(ID_END_KEY).await
    }

    pub async fn swap_id_end(
        &mut self,
        expected: Option<u64>,
        new_end: u64,
    ) -> Result<Swap<u64>, StorageError> {
        self.swap_u64(ID_END_KEY, expected, new_end).await
    }

    pub async fn bootstrap_record(&mut self) -> Result<Option<BootstrapRecord>, StorageError> {
        match self.raw.get(CLUSTER_KEY).await.map_err(failed)? {
            None => Ok(None),
            Some(v) => decode(CLUSTER_KEY, &v).map(Some),
        }
    }

    /// Writes the bootstrap record if there is none.
    pub async fn bootstrap(
        &mut self,
        record: &BootstrapRecord,
    ) -> Result<Swap<BootstrapRecord>, StorageError> {
        let (done, found) =
            self.raw.cas(CLUSTER_KEY, None, Some(&encode(record))).await.map_err(failed)?;
        if done {
            return Ok(Swap::Done);
        }
        let found = found.map(|v| decode(CLUSTER_KEY, &v)).transpose()?;
        Ok(Swap::Lost { found })
    }

    pub async fn put_store(&mut self, store: &Store) -> Result<(), StorageError> {
        self.raw.put(&store_key(store.id), &encode(store)).await.map_err(failed)
    }

    pub async fn store(&mut self, id: StoreId) -> Result<Option<Store>, StorageError> {
        let key = store_key(id);
        match self.raw.get(&key).await.map_err(failed)? {
            None => Ok(None),
            Some(v) => decode(&key, &v).map(Some),
        }
    }

    pub async fn stores(&mut self) -> Result<Vec<Store>, StorageError> {
        self.scan_prefix(STORE_PREFIX).await
    }

    /// Writes `region`'s record unless the stored one is newer (a greater version or conf_ver):
    /// a PD node that lost its leadership without knowing it may still act on a stale
    /// heartbeat, and must not overwrite what the new leader wrote. A compare-and-swap on the
    /// record read, so that no newer record lands in between.
    pub async fn put_region(&mut self, region: &Region) -> Result<Swap<Region>, StorageError> {
        let key = region_key(region.id);
        let new = encode(region);
        for _ in 0..3 {
            let current = self.raw.get(&key).await.map_err(failed)?;
            if let Some(bytes) = &current {
                let stored: Region = decode(&key, bytes)?;
                if stored.epoch.version > region.epoch.version
                    || stored.epoch.conf_ver > region.epoch.conf_ver
                {
                    return Ok(Swap::Lost { found: Some(stored) });
                }
            }
            let (done, _) =
                self.raw.cas(&key, current.as_deref(), Some(&new)).await.map_err(failed)?;
            if done {
                return Ok(Swap::Done);
            }
        }
        Err(StorageError::Failed(format!("the record of region {} kept moving", region.id)))
    }

    pub async fn delete_region(&mut self, id: RegionId) -> Result<(), StorageError> {
        self.raw.delete(&region_key(id)).await.map_err(failed)
    }

    pub async fn regions(&mut self) -> Result<Vec<Region>, StorageError> {
        self.scan_prefix(REGION_PREFIX).await
    }

    pub async fn put_operator(&mut self, op: &Operator) -> Result<(), StorageError> {
        self.raw.put(&operator_key(op.region_id), &encode(op)).await.map_err(failed)
    }

    pub async fn delete_operator(&mut self, region_id: RegionId) -> Result<(), StorageError> {
        self.raw.delete(&operator_key(region_id)).await.map_err(failed)
    }

    /// The operators saved as running, in region id order.
    pub async fn operators(&mut self) -> Result<Vec<Operator>, StorageError> {
        self.scan_prefix(OPERATOR_PREFIX).await
    }

    async fn scan_prefix<T: for<'de> Deserialize<'de>>(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<T>, StorageError> {
        let end = prefix_end(prefix);
        let kvs = self.raw.scan(prefix.as_bytes(), &end, u64::MAX).await.map_err(failed)?;
        kvs.iter().map(|(k, v)| decode(k, v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_id_and_stay_inside_their_prefix() {
        assert!(store_key(9) < store_key(10));
        assert!(region_key(u64::MAX) < prefix_end(REGION_PREFIX));
        assert!(region_key(0).as_slice() > REGION_PREFIX.as_bytes());
        assert!(region_key(u64::MAX) < store_key(0), "regions and stores do not interleave");
    }

    #[test]
    fn a_bad_record_names_its_key() {
        let err = decode::<Store>(b"pd/store/1", b"\xff\xff\xff").unwrap_err();
        assert!(
            matches!(err, StorageError::Corrupt { ref key, .. } if key == "pd/store/1"),
            "{err}"
        );
    }
}
