//! Node faults: power loss and restart, pause and resume, clock skew (offsets, bumps, strobes,
//! drift), disk read errors and torn writes, and membership changes through an admin client.

use std::collections::BTreeMap;

use madsim::time::Instant;
use minikv_client::{ClientConfig, RawClient};
use minikv_pd::{PdClient, PdClientConfig};
use minikv_proto::metapb::{Peer, PeerRole, StoreId};
use minikv_proto::raftpb::ConfChangeType;
use minikv_runtime::Clock;
use minikv_server::sim_cluster::FIRST_REGION_ID;

use super::Ctx;
use crate::scenario::{
    Between, ClockSpec, DiskSpec, KillSpec, LoseSpec, MembershipSpec, PauseSpec,
};

fn since_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

pub async fn kill(mut ctx: Ctx, spec: KillSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 100, 800);
    let down_for = ctx.between(&spec.down_ms, "down_ms", 50, 500);
    let max_down =
        spec.max_down.as_ref().map_or((ctx.stores.len() as u64 - 1) / 2, |m| *m.get_ref());
    let all_at_ms = spec.all_at_ms.as_ref().map(|a| *a.get_ref());
    let target_leader = spec.leader.as_ref().is_some_and(|l| *l.get_ref());
    let start = Instant::now();
    let mut down: BTreeMap<StoreId, u64> = BTreeMap::new();
    let mut next_kill_ms = ctx.in_range(every);
    let mut all_done = false;
    while !ctx.over() {
        let now = since_ms(start);
        let due: Vec<StoreId> =
            down.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for id in due {
            down.remove(&id);
            ctx.world.cluster().restart(id);
            ctx.world.fault("restart", &format!("{} {id} powers on", ctx.noun()));
        }
        if !all_done && all_at_ms.is_some_and(|at| now >= at) {
            all_done = true;
            for id in ctx.stores.clone() {
                if let std::collections::btree_map::Entry::Vacant(slot) = down.entry(id) {
                    ctx.world.cluster().crash(id);
                    slot.insert(now + ctx.in_range(down_for));
                }
            }
            ctx.world.fault("kill", &format!("every {} loses power at once", ctx.noun()));
        } else if now >= next_kill_ms {
            next_kill_ms = now + ctx.in_range(every);
            if (down.len() as u64) < max_down {
                let up: Vec<StoreId> =
                    ctx.stores.iter().copied().filter(|id| !down.contains_key(id)).collect();
                if !up.is_empty() {
                    let mut id = up[ctx.below(up.len() as u64) as usize];
                    if target_leader
                        && let Some(leader) = ctx.leader()
                        && up.contains(&leader)
                    {
                        id = leader;
                    }
                    let hold = ctx.in_range(down_for);
                    ctx.world.cluster().crash(id);
                    down.insert(id, now + hold);
                    ctx.world
                        .fault("kill", &format!("{} {id} loses power for {hold} ms", ctx.noun()));
                }
            }
        }
        let next_restart = down.values().min().copied().unwrap_or(u64::MAX);
        let wake =
            next_restart.min(next_kill_ms).min(all_at_ms.filter(|_| !all_done).unwrap_or(u64::MAX));
        ctx.sleep_ms(wake.saturating_sub(since_ms(start)).max(1)).await;
    }
    for id in down.into_keys() {
        ctx.world.cluster().restart(id);
        ctx.world.fault("restart", &format!("{} {id} powers on (phase end)", ctx.noun()));
    }
}

pub async fn pause(mut ctx: Ctx, spec: PauseSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 100, 800);
    let hold_for = ctx.between(&spec.pause_ms, "pause_ms", 50, 400);
    while ctx.next_round(every).await {
        let ids = ctx.shuffled_stores();
        let Some(id) = ids.into_iter().find(|id| {
            let c = ctx.world.cluster();
            c.is_up(*id) && !c.is_paused(*id)
        }) else {
            continue;
        };
        let hold = ctx.in_range(hold_for);
        ctx.world.cluster().pause(id);
        ctx.world.fault("pause", &format!("{} {id} paused for {hold} ms", ctx.noun()));
        ctx.sleep_ms(hold).await;
        ctx.world.cluster().resume(id);
    }
}

pub async fn clock(mut ctx: Ctx, spec: ClockSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 50, 500);
    let max_offset = ctx.value(&spec.max_offset_ms, "max_offset_ms", 10, 2_000) as i64;
    let max_drift = ctx.value(&spec.max_drift_ppm, "max_drift_ppm", 1_000, 200_000) as i64;
    let clocks: Vec<(StoreId, Clock)> = {
        let c = ctx.world.cluster();
        ctx.stores.iter().map(|id| (*id, c.clock(*id))).collect()
    };
    let signed = |ctx: &mut Ctx, max: i64| -> i64 {
        let x = ctx.below(max as u64 * 2 + 1) as i64;
        x - max
    };
    let skew_leader = spec.skew_leader.as_ref().is_some_and(|s| *s.get_ref());
    let leader_ahead_ms = spec.leader_ahead_ms.as_ref().map(|a| *a.get_ref() as i64);
    while ctx.next_round(every).await {
        let (id, clock) = clocks[ctx.below(clocks.len() as u64) as usize].clone();
        // With `skew_leader`, half the rounds are the worst case for a leader lease; with
        // `leader_ahead_ms`, half the rounds put the leader's clock ahead of the others'.
        let round = if skew_leader && ctx.below(2) == 0 {
            5
        } else if leader_ahead_ms.is_some() && ctx.below(2) == 0 {
            6
        } else {
            ctx.below(5)
        };
        match round {
            6 => {
                // The leader's clock runs ahead and every other clock keeps true time: when
                // leadership moves, the new leader's clock is behind the old one's by that much.
                let Some(leader) = ctx.leader() else { continue };
                let ahead = leader_ahead_ms.unwrap_or(0);
                for (other, c) in &clocks {
                    c.set_offset_ms(if *other == leader { ahead } else { 0 });
                }
                let what = format!("{} {leader} (the leader) clock set {ahead:+} ms", ctx.noun());
                ctx.world.fault("clock-leader-ahead", &what);
            }
            5 => {
                // The leader's clock runs slow (its lease lasts longer in real time) and every
                // other clock fast (their elections come sooner), for a round; whenever the
                // leader changes, the new one is slowed instead.
                let hold = ctx.in_range(every);
                ctx.world.fault(
                    "clock-skew-leader",
                    &format!(
                        "for {hold} ms the leader's clock drifts -{max_drift} ppm, the others +"
                    ),
                );
                let start = Instant::now();
                let mut slowed = None;
                while since_ms(start) < hold && !ctx.over() {
                    let leader = ctx.leader();
                    if leader.is_some() && leader != slowed {
                        slowed = leader;
                        for (other, c) in &clocks {
                            c.set_drift_ppm(if Some(*other) == leader {
                                -max_drift
                            } else {
                                max_drift
                            });
                        }
                    }
                    ctx.sleep_ms(5).await;
                }
                for (_, c) in &clocks {
                    c.set_drift_ppm(0);
                }
            }
            0 => {
                let offset = signed(&mut ctx, max_offset);
                clock.set_offset_ms(offset);
                ctx.world
                    .fault("clock-offset", &format!("{} {id} clock set {offset:+} ms", ctx.noun()));
            }
            1 => {
                let bump = signed(&mut ctx, max_offset / 2);
                clock.set_offset_ms(clock.offset_ms() + bump);
                ctx.world
                    .fault("clock-bump", &format!("{} {id} clock bumped {bump:+} ms", ctx.noun()));
            }
            2 => {
                let a = signed(&mut ctx, max_offset);
                let flip = ctx.in_range(Between::new(5, 20));
                let strobe_for = ctx.in_range(Between::new(100, 300));
                ctx.world.fault(
                    "clock-strobe",
                    &format!(
                        "{} {id} clock strobes 0/{a:+} ms every {flip} ms for {strobe_for} ms",
                        ctx.noun()
                    ),
                );
                let start = Instant::now();
                let base = clock.offset_ms();
                let mut high = false;
                while since_ms(start) < strobe_for && !ctx.over() {
                    high = !high;
                    clock.set_offset_ms(if high { base + a } else { base });
                    ctx.sleep_ms(flip).await;
                }
                clock.set_offset_ms(base);
            }
            3 => {
                let drift = signed(&mut ctx, max_drift);
                clock.set_drift_ppm(drift);
                ctx.world.fault(
                    "clock-drift",
                    &format!("{} {id} clock drifts {drift:+} ppm", ctx.noun()),
                );
            }
            _ => {
                clock.reset();
                tracing::info!(target: "minikv::sim", "nemesis clock: {} {id} clock reset", ctx.noun());
            }
        }
    }
    for (_, clock) in clocks {
        clock.reset();
    }
}

pub async fn disk(mut ctx: Ctx, spec: DiskSpec) {
    let read_error_ppm = ctx.value(&spec.read_error_ppm, "read_error_ppm", 10, 2_000) as u32;
    let keep_ppm = spec.crash_keep_ppm.as_ref().map(|k| *k.get_ref() as u32);
    // Latent read errors on a minority of disks; torn-write odds on all of them.
    let minority = (ctx.stores.len() - 1) / 2;
    let victims: Vec<StoreId> = ctx.shuffled_stores().into_iter().take(minority.max(1)).collect();
    let before: u64 = {
        let c = ctx.world.cluster();
        ctx.stores.iter().map(|id| c.disk_counters(*id).read_errors).sum()
    };
    {
        let c = ctx.world.cluster();
        for id in &ctx.stores {
            let disk = c.disk(*id);
            let mut config = disk.config();
            if victims.contains(id) {
                config.read_error_ppm = read_error_ppm;
            }
            if let Some(k) = keep_ppm {
                config.crash_keep_ppm = k;
            }
            disk.set_config(config);
        }
    }
    tracing::info!(
        target: "minikv::sim",
        "nemesis disk: read errors at {read_error_ppm} ppm on stores {victims:?}"
    );
    let latent_every = ctx.between(&spec.latent_every_ms, "latent_every_ms", 200, 2_000);
    if latent_every == Between::new(0, 0) {
        while !ctx.over() {
            ctx.sleep_ms(1_000).await;
        }
    }
    while ctx.next_round(latent_every).await {
        let id = victims[ctx.below(victims.len() as u64) as usize];
        let disk = ctx.world.cluster().disk(id);
        let len = disk.durable_len_bytes();
        if len > 0 {
            let offset = ctx.below(len);
            disk.inject_read_error(offset);
            ctx.world.fault(
                "disk-latent-error",
                &format!("{} {id} sector at byte {offset}", ctx.noun()),
            );
        }
    }
    let c = ctx.world.cluster();
    let mut after = 0;
    for id in &ctx.stores {
        let disk = c.disk(*id);
        let mut config = disk.config();
        config.read_error_ppm = 0;
        disk.set_config(config);
        disk.clear_read_errors();
        after += c.disk_counters(*id).read_errors;
    }
    drop(c);
    ctx.world.count("disk-read-error", after - before);
}

/// The fewest voters the membership nemesis leaves a region with: with three, one voter may
/// be down or cut off and the region still has a quorum.
const MIN_VOTERS: u64 = 3;

pub async fn membership(mut ctx: Ctx, spec: MembershipSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 100, 300);
    let addrs = ctx.world.cluster().addrs();
    let mut config = ClientConfig::new(addrs);
    config.request_timeout_ms = 500;
    config.rpc_timeout_ms = 200;
    let Ok(mut admin) = RawClient::connect(config, Clock::new(), "0.0.0.0:0").await else {
        panic!("the admin client cannot bind");
    };
    // With PD, new peers take their ids from PD's allocator, as PD's own operators do.
    let pd_addrs = ctx.world.cluster().pd_addrs();
    let mut pd = if pd_addrs.is_empty() {
        None
    } else {
        let config = PdClientConfig::new(pd_addrs);
        let Ok(pd) = PdClient::connect(config, Clock::new(), "0.0.0.0:0").await else {
            panic!("the admin PD client cannot bind");
        };
        Some(pd)
    };
    let total = ctx.stores.len() as u64;
    while ctx.next_round(every).await {
        let (region, leader) = {
            let c = ctx.world.cluster();
            let leader = c.leader();
            let region = leader
                .and_then(|l| c.probe(l).peers.get(&FIRST_REGION_ID).map(|s| s.region.clone()));
            (region, leader)
        };
        let (Some(region), Some(leader)) = (region, leader) else { continue };
        let voters = region.peers.iter().filter(|p| p.role == PeerRole::Voter).count() as u64;
        // Never below `MIN_VOTERS`: a removal is chosen on this view of the region and sent
        // pinned to its epoch, so it applies to exactly these voters or not at all.
        let remove = voters > MIN_VOTERS && (voters == total || ctx.below(2) == 0);
        let (change, peer) = if remove {
            // The leader itself is a candidate too: it must hand over and step down.
            let candidates: Vec<Peer> = region
                .peers
                .iter()
                .filter(|p| p.store_id != leader || ctx.below(4) == 0)
                .cloned()
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let victim = candidates[ctx.below(candidates.len() as u64) as usize].clone();
            (ConfChangeType::RemoveNode, victim)
        } else {
            let missing: Vec<StoreId> =
                ctx.stores.iter().copied().filter(|s| region.peer_on_store(*s).is_none()).collect();
            if missing.is_empty() {
                continue;
            }
            let store_id = missing[ctx.below(missing.len() as u64) as usize];
            let id = match pd.as_mut() {
                Some(pd) => match pd.alloc_id().await {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::info!(target: "minikv::sim", "nemesis membership: no peer id: {e}");
                        continue;
                    }
                },
                // Without PD, peer ids only grow: epoch-style, from the region's conf_ver.
                None => 1_000 + region.epoch.conf_ver * 10 + store_id,
            };
            (ConfChangeType::AddNode, Peer { id, store_id, role: PeerRole::Voter })
        };
        let what = format!("{change:?} peer {} on store {}", peer.id, peer.store_id);
        // An `EpochNotMatch` comes back here (the region changed since this view was taken);
        // the next round chooses again on a fresh view.
        match admin.change_peer_in(&region, change, peer).await {
            Ok(_) => ctx.world.fault("membership", &what),
            Err(e) => {
                tracing::info!(target: "minikv::sim", "nemesis membership: {what} failed: {e}")
            }
        }
    }
}

/// Loses `count` stores holding a voter of the first region for good, once, at a moment of
/// the phase: the first moment from `at_ms` on at which the region has at least three voters on
/// live stores (never its only copies), and never a majority of its voters.
pub async fn lose(mut ctx: Ctx, spec: LoseSpec) {
    let count = spec.count.as_ref().map_or(1, |c| *c.get_ref());
    let at = ctx.between(&spec.at_ms, "at_ms", 200, 1_000);
    let wait = ctx.in_range(at);
    ctx.sleep_ms(wait).await;
    while !ctx.over() {
        let voters: Vec<StoreId> = {
            let c = ctx.world.cluster();
            let region = c.leader().and_then(|l| c.probe(l).peers.get(&FIRST_REGION_ID).cloned());
            region.map_or_else(Vec::new, |status| {
                status
                    .region
                    .peers
                    .iter()
                    .filter(|p| p.role == PeerRole::Voter && c.is_up(p.store_id))
                    .map(|p| p.store_id)
                    .collect()
            })
        };
        if voters.len() >= 3 {
            let mut voters = voters;
            let minority = (voters.len() as u64 - 1) / 2;
            for _ in 0..count.min(minority) {
                let id = voters.remove(ctx.below(voters.len() as u64) as usize);
                ctx.world.cluster().lose(id);
                ctx.world.fault("lose", &format!("store {id} is lost for good"));
            }
            return;
        }
        ctx.sleep_ms(50).await;
    }
}
