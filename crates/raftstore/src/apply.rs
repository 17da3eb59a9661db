//! Applying committed entries: data commands through an overlay into one write batch, admin
//! commands (conf change, log compaction), then the apply state in the same batch, so data and
//! apply index move together atomically. Apply works on the peer's Raft node and storage and
//! reports what it did (`Applied`); answering proposals and the lease are the peer's business.

use std::collections::BTreeMap;

use minikv_engine::{Engine, WriteBatch};
use minikv_proto::decode;
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{self, Region};
use minikv_proto::raft_cmdpb::{
    AdminRequest, AdminResponse, CfName, RaftCmdRequest, RaftCmdResponse, Request, Response,
};
use minikv_raft::{ConfChangeType, ConfChangeV2, Entry, EntryType, RawNode, StateRole};

use crate::cf::{end_bound, engine_cf};
use crate::cmd_check::{change_region, check_epoch};
use crate::error::Result;
use crate::events;
use crate::peer_storage::{PeerStorage, conf_state_of};
use crate::types::{error_response, ok_response};

/// Writes of the entries applied so far in this batch, so later entries read them.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    writes: BTreeMap<(CfName, Vec<u8>), Option<Vec<u8>>>,
}

impl Overlay {
    fn get(&self, engine: &Engine, cf: CfName, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.get(&(cf, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => Ok(engine.get(engine_cf(cf), key)?),
        }
    }

    fn scan(
        &self,
        engine: &Engine,
        cf: CfName,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let in_range = |k: &[u8]| k >= start && end.is_none_or(|e| k < e);
        let shadowed = self.writes.keys().filter(|(c, k)| *c == cf && in_range(k)).count();
        let base = engine.scan(engine_cf(cf), start, end, limit.saturating_add(shadowed))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
        for ((c, k), v) in &self.writes {
            if *c != cf || !in_range(k) {
                continue;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    fn write(&mut self, batch: &mut WriteBatch, cf: CfName, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => batch.put(engine_cf(cf), key, v),
            None => batch.delete(engine_cf(cf), key),
        };
        self.writes.insert((cf, key.to_vec()), value.map(<[u8]>::to_vec));
    }
}

/// Executes data requests against the engine plus `overlay`. Writes need `batch`: a read-only
/// command passes `None`, and a write in it is a bug.
pub(crate) fn exec_requests(
    engine: &Engine,
    overlay: &mut Overlay,
    mut batch: Option<&mut WriteBatch>,
    region: &Region,
    requests: &[Request],
) -> Result<Vec<Response>> {
    let mut out = Vec::with_capacity(requests.len());
    for req in requests {
        let resp = match req {
            Request::Get { cf, key } => Response::Get { value: overlay.get(engine, *cf, key)? },
            Request::Scan { cf, start_key, end_key, limit } => {
                let start = start_key.max(&region.start_key);
                let end = match (end_key.is_empty(), end_bound(region)) {
                    (true, region_end) => region_end,
                    (false, None) => Some(end_key.as_slice()),
                    (false, Some(region_end)) => Some(end_key.as_slice().min(region_end)),
                };
                let limit = usize::try_from(*limit).unwrap_or(usize::MAX);
                Response::Scan { kvs: overlay.scan(engine, *cf, start, end, limit)? }
            }
            write => {
                let batch = batch.as_deref_mut().expect("a write request in a read-only command");
                match write {
                    Request::Put { cf, key, value } => {
                        overlay.write(batch, *cf, key, Some(value));
                        Response::Put
                    }
                    Request::Delete { cf, key } => {
                        overlay.write(batch, *cf, key, None);
                        Response::Delete
                    }
                    Request::Cas { cf, key, expected, new_value } => {
                        let previous = overlay.get(engine, *cf, key)?;
                        let succeeded = previous == *expected;
                        if succeeded {
                            overlay.write(batch, *cf, key, new_value.as_deref());
                        }
                        Response::Cas { succeeded, previous }
                    }
                    Request::Get { .. } | Request::Scan { .. } => {
                        unreachable!("reads handled above")
                    }
                }
            }
        };
        out.push(resp);
    }
    Ok(out)
}

/// What applying a run of committed entries did, for the peer to act on.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Every applied entry's `(term, index)` and its answer (`None`: nothing to answer).
    pub results: Vec<(u64, u64, Option<RaftCmdResponse>)>,
    /// A membership change applied: the quorum changed.
    pub conf_changed: bool,
    /// This peer applied its own removal (the last entry applied: nothing after it is); the
    /// batch records the peer's tombstone, the store destroys it after the write.
    pub removed_self: bool,
    /// Peers removed by a conf change this leader applied, to be told so.
    pub removed_peers: Vec<metapb::Peer>,
    /// This peer as the region lists it after the last conf change (its role may change).
    pub me: Option<metapb::Peer>,
}

/// State of one apply round: the batch, the overlay and the region as applied so far.
struct ApplyCtx {
    batch: WriteBatch,
    overlay: Overlay,
    region: Region,
    applied: Applied,
}

/// Applies committed `entries` of peer `me` into `batch` (their data, then the apply state),
/// reading through the engine as it was before `batch`; if one of them removes this peer, up
/// to that one. The caller writes `batch`, and must release the answers in the returned
/// `Applied` only once the write succeeded. The caller also guarantees that `batch` holds no
/// other writes to this region's data and no snapshot for it (reads here would not see them).
pub(crate) fn apply_committed(
    raw: &mut RawNode<PeerStorage>,
    me: &metapb::Peer,
    entries: &[Entry],
    engine: &Engine,
    batch: &mut WriteBatch,
) -> Result<Applied> {
    if entries.is_empty() {
        return Ok(Applied::default());
    }
    let mut ctx = ApplyCtx {
        batch: std::mem::take(batch),
        overlay: Overlay::default(),
        region: raw.store().region().clone(),
        applied: Applied { results: Vec::with_capacity(entries.len()), ..Applied::default() },
    };
    let mut applied_index = 0;
    for e in entries {
        if ctx.applied.removed_self {
            // As in TiKV, a peer that applied its own removal applies nothing more: it is
            // going away, and a later conf change that adds this store back as a new peer
            // must not end up in this peer's tombstone (which would refuse the new peer).
            break;
        }
        applied_index = e.index;
        events::entry_applied(ctx.region.id, e.index, e.term, &e.data);
        let resp = match e.entry_type {
            EntryType::Normal if e.data.is_empty() => {
                // A leader's no-op, or a conf change the Raft core refused.
                Some(error_response(
                    RegionError::CommandRefused {
                        reason: "conf change refused: another is pending".to_string(),
                    },
                    e.term,
                ))
            }
            EntryType::Normal => Some(apply_normal(raw, e, engine, &mut ctx)?),
            EntryType::ConfChange => apply_conf_change(raw, me, e, &mut ctx),
        };
        ctx.applied.results.push((e.term, e.index, resp));
    }
    let storage = raw.store_mut();
    let region_changed = ctx.region != *storage.region();
    storage.set_applied(applied_index, ctx.region);
    if ctx.applied.removed_self {
        // The tombstone goes with the removal, in one write: a store that fails before
        // `destroy_peer` must not come back with a region state that does not list it.
        storage.write_removal_state(&mut ctx.batch)?;
    } else if region_changed {
        storage.write_apply_state(&mut ctx.batch)?;
    } else {
        storage.write_apply_index(&mut ctx.batch)?;
    }
    *batch = ctx.batch;
    storage.check_invariants();
    Ok(ctx.applied)
}

fn apply_normal(
    raw: &mut RawNode<PeerStorage>,
    e: &Entry,
    engine: &Engine,
    ctx: &mut ApplyCtx,
) -> Result<RaftCmdResponse> {
    let cmd: RaftCmdRequest = decode(&e.data)?;
    if let Some(AdminRequest::CompactLog { compact_index, .. }) = cmd.admin {
        if raw.store_mut().compact_to(compact_index, &mut ctx.batch) {
            events::log_truncated(ctx.region.id, compact_index);
        }
        let mut resp = ok_response(e.term);
        resp.admin_response = Some(AdminResponse::CompactLog);
        return Ok(resp);
    }
    if let Err(err) = check_epoch(&cmd, &ctx.region) {
        return Ok(error_response(err, e.term));
    }
    let responses =
        exec_requests(engine, &mut ctx.overlay, Some(&mut ctx.batch), &ctx.region, &cmd.requests)?;
    let mut resp = ok_response(e.term);
    resp.responses = responses;
    Ok(resp)
}

fn apply_conf_change(
    raw: &mut RawNode<PeerStorage>,
    me: &metapb::Peer,
    e: &Entry,
    ctx: &mut ApplyCtx,
) -> Option<RaftCmdResponse> {
    let cc: ConfChangeV2 = decode(&e.data).unwrap_or_else(|err| {
        panic!("region {}: undecodable conf change at {}: {err}", ctx.region.id, e.index)
    });
    if e.context.is_empty() {
        // Leaving a joint configuration (never proposed by this store, applied for safety).
        raw.apply_conf_change(&cc).expect("leaving a joint config");
        return None;
    }
    let cmd: RaftCmdRequest = decode(&e.context).unwrap_or_else(|err| {
        panic!("region {}: undecodable conf change command at {}: {err}", ctx.region.id, e.index)
    });
    let Some(AdminRequest::ChangePeer { change_type, peer }) = cmd.admin.clone() else {
        panic!(
            "region {}: conf change entry {} without a ChangePeer command",
            ctx.region.id, e.index
        );
    };
    if let Err(err) = check_epoch(&cmd, &ctx.region) {
        return Some(error_response(err, e.term));
    }
    let region = match change_region(&ctx.region, change_type, &peer) {
        Ok(r) => r,
        Err(reason) => {
            return Some(error_response(RegionError::CommandRefused { reason }, e.term));
        }
    };
    let cs = raw.apply_conf_change(&cc).unwrap_or_else(|err| {
        panic!(
            "region {}: conf change {cc:?} fits the region but Raft refused it: {err}",
            region.id
        )
    });
    assert_eq!(
        conf_state_of(&region).voters.len(),
        cs.voters.len(),
        "region {}: region peers and Raft configuration disagree",
        region.id
    );
    ctx.applied.conf_changed = true;
    events::conf_change_applied(
        region.id,
        change_type,
        peer.id,
        peer.store_id,
        region.epoch.conf_ver,
    );
    if change_type == ConfChangeType::RemoveNode {
        if peer.id == me.id {
            ctx.applied.removed_self = true;
        } else if raw.raft.role == StateRole::Leader
            && let Some(p) = ctx.region.peers.iter().find(|p| p.id == peer.id)
        {
            ctx.applied.removed_peers.push(p.clone());
        }
    }
    if let Some(me) = region.peers.iter().find(|p| p.id == me.id) {
        ctx.applied.me = Some(me.clone());
    }
    ctx.region = region.clone();
    let mut resp = ok_response(e.term);
    resp.admin_response = Some(AdminResponse::ChangePeer { region });
    Some(resp)
}
