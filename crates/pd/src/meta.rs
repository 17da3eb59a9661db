//! PD's metadata requests: IDs, bootstrap, stores, routing, heartbeats and the operators they
//! carry back. Bootstrap and store records are read and written through the PD region on every
//! request. The cluster view (stores with their stats, the region tree, operators) lives in the
//! serving node's memory: loaded from the PD region when the node starts to serve, kept by
//! heartbeats, and every region change a heartbeat brings, and every operator started,
//! advanced or ended, is written back before it is answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minikv_proto::metapb::{Region, RegionId, Store};
use minikv_proto::pdpb::{PdError, PdRequest, PdResponse, RegionHeartbeat, StoreStats};

use crate::cluster::{Cluster, ClusterConfig};
use crate::ids::{IdPlan, IdState};
use crate::schedule::{
    Operator, OperatorController, OperatorCounts, OperatorKind, ScheduleConfig, Scheduler,
};
use crate::storage::{BootstrapRecord, Storage, Swap};

/// What a PD node did, for tests and the simulator's report; clones share it.
#[derive(Debug, Clone, Default)]
pub struct PdStats {
    inner: Arc<Mutex<PdCounters>>,
}

/// The counters behind `PdStats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdCounters {
    /// Operators by kind, over every stint of this node as the serving leader.
    pub operators: std::collections::BTreeMap<&'static str, OperatorCounts>,
    /// Times the node loaded the cluster view from the PD region.
    pub view_loads: u64,
    pub region_heartbeats: u64,
    pub stale_heartbeats: u64,
    /// Operators an earlier PD leader saved, carried on when this node loaded its view.
    pub operators_restored: u64,
}

impl PdStats {
    pub fn snapshot(&self) -> PdCounters {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut PdCounters)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The scheduling knobs of a PD node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaConfig {
    pub cluster: ClusterConfig,
    pub schedule: ScheduleConfig,
    /// A scheduling round runs at most this often (on a region heartbeat).
    pub schedule_interval_ms: u64,
    /// IDs claimed per write of the ID window.
    pub id_step: u64,
}

/// The metadata half of a PD node's service.
#[derive(Debug)]
pub struct Meta {
    config: MetaConfig,
    ids: IdState,
    /// `None` until loaded for this stint as the serving node.
    view: Option<View>,
    stats: PdStats,
}

/// The in-memory cluster view of a serving node.
#[derive(Debug)]
struct View {
    cluster: Cluster,
    controller: OperatorController,
    scheduler: Scheduler,
    last_schedule_ms: Option<u64>,
    /// Counts already reported to `PdStats` (the controller's are cumulative).
    reported: std::collections::BTreeMap<&'static str, OperatorCounts>,
    /// The running operators as last saved in the PD region.
    saved_operators: BTreeMap<RegionId, Operator>,
}

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
    pub fn new(config: MetaConfig, stats: PdStats) -> Meta {
        Meta { ids: IdState::new(config.id_step), config, view: None, stats }
    }

    /// The node stopped serving: its view is dropped and loaded again when it serves next
    /// (meanwhile another node may have changed everything).
    pub fn forget_view(&mut self) {
        self.view = None;
    }

    /// Serves one request (every kind but TSO).
    pub async fn serve(
        &mut self,
        storage: &mut Storage,
        request: PdRequest,
        now_ms: u64,
    ) -> Result<PdResponse, PdError> {
        match request {
            PdRequest::AllocId => self.alloc_id(storage).await.map(|id| PdResponse::Id { id }),
            PdRequest::IsBootstrapped => {
                let bootstrapped = storage.bootstrap_record().await?.is_some();
                Ok(PdResponse::Bootstrapped { bootstrapped })
            }
            PdRequest::Bootstrap { store, region } => {
                self.bootstrap(storage, store, region, now_ms).await
            }
            PdRequest::PutStore { store } => {
                if store.id == 0 {
                    return Err(invalid("put store: store id 0".into()));
                }
                if storage.bootstrap_record().await?.is_none() {
                    return Err(PdError::NotBootstrapped);
                }
                storage.put_store(&store).await?;
                self.view(storage, now_ms).await?.cluster.put_store(store, now_ms)?;
                Ok(PdResponse::Ok)
            }
            PdRequest::GetStore { store_id } => {
                // The view holds every store registered through the serving node, and those
                // before it (loaded): the PD region is read only for a store it has not seen.
                let view = self.view(storage, now_ms).await?;
                if let Some(info) = view.cluster.store(store_id) {
                    return Ok(PdResponse::Store { store: Some(info.store.clone()) });
                }
                Ok(PdResponse::Store { store: storage.store(store_id).await? })
            }
            PdRequest::GetAllStores => Ok(PdResponse::Stores { stores: storage.stores().await? }),
            PdRequest::GetStoreStats { store_id } => {
                let view = self.view(storage, now_ms).await?;
                let stats = view.cluster.store(store_id).and_then(|s| s.stats.clone());
                Ok(PdResponse::StoreStats { stats })
            }
            PdRequest::GetRegion { key } => {
                let view = self.view(storage, now_ms).await?;
                let region = view.cluster.region_by_key(&key).map(|r| r.to_info());
                Ok(PdResponse::Region { region })
            }
            PdRequest::GetRegionById { region_id } => {
                let view = self.view(storage, now_ms).await?;
                Ok(PdResponse::Region {
                    region: view.cluster.region(region_id).map(|r| r.to_info()),
                })
            }
            PdRequest::ScanRegions { start_key, end_key, limit } => {
                let view = self.view(storage, now_ms).await?;
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let regions = view.cluster.scan_regions(&start_key, &end_key, limit);
                Ok(PdResponse::Regions {
                    regions: regions.into_iter().map(|r| r.to_info()).collect(),
                })
            }
            PdRequest::StoreHeartbeat { stats } => {
                self.store_heartbeat(storage, stats, now_ms).await?;
                Ok(PdResponse::Ok)
            }
            PdRequest::RegionHeartbeat { heartbeat } => {
                self.region_heartbeat(storage, heartbeat, now_ms).await
            }
            PdRequest::Tso { .. } => unreachable!("served by the service itself"),
        }
    }

    async fn alloc_id(&mut self, storage: &mut Storage) -> Result<u64, PdError> {
        for _ in 0..3 {
            let stored = if self.ids.exhausted() { storage.id_end().await? } else { None };
            match self.ids.plan(stored) {
                IdPlan::Serve { id } => return Ok(id),
                IdPlan::Claim { expected, new_end } => {
                    match storage.swap_id_end(expected, new_end).await {
                        Ok(Swap::Done) => self.ids.claimed(expected, new_end),
                        Ok(Swap::Lost { .. }) => {}
                        Err(e) => {
                            self.ids.forget();
                            return Err(e.into());
                        }
                    }
                }
            }
        }
        Err(PdError::Unavailable { reason: "the ID window kept moving".into() })
    }

    async fn bootstrap(
        &mut self,
        storage: &mut Storage,
        store: Store,
        region: Region,
        now_ms: u64,
    ) -> Result<PdResponse, PdError> {
        check_bootstrap(&store, &region)?;
        let record = BootstrapRecord { store, region };
        match storage.bootstrap(&record).await? {
            Swap::Done => {}
            // Our own earlier attempt, whose answer was lost: finish it.
            Swap::Lost { found: Some(found) } if found == record => {}
            Swap::Lost { .. } => return Err(PdError::AlreadyBootstrapped),
        }
        storage.put_store(&record.store).await?;
        // A retried bootstrap may find the region's record already newer: that one stands.
        storage.put_region(&record.region).await?;
        let view = self.view(storage, now_ms).await?;
        view.cluster.put_store(record.store, now_ms)?;
        if view.cluster.region(record.region.id).is_none() {
            view.cluster.load_region(record.region);
        }
        Ok(PdResponse::Ok)
    }

    async fn store_heartbeat(
        &mut self,
        storage: &mut Storage,
        stats: StoreStats,
        now_ms: u64,
    ) -> Result<(), PdError> {
        let store_id = stats.store_id;
        let known = self.view(storage, now_ms).await?.cluster.store(store_id).is_some();
        if !known {
            // Registered through another PD node since this one loaded its view.
            let Some(store) = storage.store(store_id).await? else {
                return Err(invalid(format!("store heartbeat from unregistered store {store_id}")));
            };
            self.view(storage, now_ms).await?.cluster.put_store(store, now_ms)?;
        }
        self.view(storage, now_ms).await?.cluster.process_store_heartbeat(stats, now_ms)
    }

    async fn region_heartbeat(
        &mut self,
        storage: &mut Storage,
        heartbeat: RegionHeartbeat,
        now_ms: u64,
    ) -> Result<PdResponse, PdError> {
        self.stats.update(|s| s.region_heartbeats += 1);
        let view = self.view(storage, now_ms).await?;
        let outcome = match view.cluster.process_region_heartbeat(&heartbeat, now_ms) {
            Ok(outcome) => outcome,
            Err(e) => {
                self.stats.update(|s| s.stale_heartbeats += 1);
                return Err(e);
            }
        };
        for id in &outcome.removed_region_ids {
            view.controller.cancel(*id);
        }
        // Written back before the answer: a new leader's view must not be older than what
        // this one acted on.
        if outcome.needs_persist
            && let Swap::Lost { found } = storage.put_region(&heartbeat.region).await?
        {
            // Another PD node wrote a newer record: this node's view is stale. It loads the
            // view again on its next request (if it still serves).
            self.stats.update(|s| s.stale_heartbeats += 1);
            self.forget_view();
            let held = found.map(|r| r.epoch);
            return Err(PdError::StaleRegion {
                reason: format!(
                    "region {} at {:?} is older than PD's record at {held:?}",
                    heartbeat.region.id, heartbeat.region.epoch
                ),
            });
        }
        for id in outcome.removed_region_ids {
            storage.delete_region(id).await?;
        }
        self.maybe_schedule(storage, now_ms).await?;
        let view = self.view(storage, now_ms).await?;
        let step = match view.cluster.region(heartbeat.region.id) {
            Some(region) => view.controller.on_heartbeat(region, now_ms),
            None => None,
        };
        self.report_operators();
        // Saved before the step leaves: the next PD leader carries on what this one started.
        self.save_operators(storage).await?;
        Ok(PdResponse::RegionHeartbeat { step })
    }

    /// Writes to the PD region every operator started or advanced, and deletes every one
    /// ended, since the last save.
    async fn save_operators(&mut self, storage: &mut Storage) -> Result<(), PdError> {
        let Some(view) = self.view.as_mut() else { return Ok(()) };
        let ended: Vec<RegionId> = view
            .saved_operators
            .keys()
            .filter(|id| !view.controller.has_operator(**id))
            .copied()
            .collect();
        for id in ended {
            storage.delete_operator(id).await?;
            view.saved_operators.remove(&id);
        }
        let changed: Vec<Operator> = view
            .controller
            .operators()
            .filter(|op| view.saved_operators.get(&op.region_id) != Some(*op))
            .cloned()
            .collect();
        for op in changed {
            storage.put_operator(&op).await?;
            view.saved_operators.insert(op.region_id, op);
        }
        Ok(())
    }

    /// A scheduling round, if the last one is `schedule_interval_ms` old. New peers take IDs
    /// from the node's window (claimed first if it is used up).
    async fn maybe_schedule(&mut self, storage: &mut Storage, now_ms: u64) -> Result<(), PdError> {
        let interval_ms = self.config.schedule_interval_ms;
        let due = self
            .view
            .as_ref()
            .is_some_and(|v| v.last_schedule_ms.is_none_or(|at| now_ms >= at + interval_ms));
        if !due {
            return Ok(());
        }
        if self.ids.exhausted() {
            // Claim a window; the ID this takes is simply not used.
            self.alloc_id(storage).await?;
        }
        let ids = &mut self.ids;
        let view = self.view.as_mut().expect("checked above");
        view.last_schedule_ms = Some(now_ms);
        let mut alloc = || ids.take();
        view.scheduler.schedule(&view.cluster, &mut view.controller, now_ms, &mut alloc);
        Ok(())
    }

    /// Adds what the controller counted since the last report to `PdStats`.
    fn report_operators(&mut self) {
        let Some(view) = self.view.as_mut() else { return };
        for kind in OperatorKind::ALL {
            let now = view.controller.counts(kind);
            let before = view.reported.insert(kind.as_str(), now).unwrap_or_default();
            self.stats.update(|s| {
                let total = s.operators.entry(kind.as_str()).or_default();
                total.created += now.created - before.created;
                total.finished += now.finished - before.finished;
                total.cancelled += now.cancelled - before.cancelled;
                total.timed_out += now.timed_out - before.timed_out;
            });
        }
    }

    /// The cluster view, loaded from the PD region if this node has none.
    async fn view(&mut self, storage: &mut Storage, now_ms: u64) -> Result<&mut View, PdError> {
        if self.view.is_none() {
            let stores = storage.stores().await?;
            let regions = storage.regions().await?;
            let record = storage.bootstrap_record().await?;
            let mut cluster = Cluster::new(self.config.cluster);
            for store in stores {
                cluster.put_store(store, now_ms)?;
            }
            for region in regions {
                cluster.load_region(region);
            }
            if let Some(record) = record
                && cluster.region(record.region.id).is_none()
                && cluster
                    .regions()
                    .overlaps(&record.region.start_key, &record.region.end_key)
                    .is_empty()
            {
                cluster.load_region(record.region);
            }
            // Operators an earlier leader started run on; their timeouts count from now (the
            // creation time was another node's clock).
            let mut controller = OperatorController::new(self.config.schedule.operator_timeout_ms);
            let mut saved_operators = BTreeMap::new();
            for mut op in storage.operators().await? {
                op.created_at_ms = now_ms;
                if cluster.region(op.region_id).is_some() && controller.restore(op.clone()) {
                    saved_operators.insert(op.region_id, op);
                }
            }
            self.stats.update(|s| {
                s.view_loads += 1;
                s.operators_restored += saved_operators.len() as u64;
            });
            self.view = Some(View {
                cluster,
                controller,
                scheduler: Scheduler::new(self.config.schedule.clone()),
                last_schedule_ms: None,
                reported: Default::default(),
                saved_operators,
            });
        }
        Ok(self.view.as_mut().expect("loaded above"))
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
