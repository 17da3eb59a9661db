//! Network faults: partitions (halves, isolate, bridge, majorities ring), one-way clogs,
//! packet loss and latency. Partitions and clogs own separate sets of cut links; the network
//! cuts their union, so healing one never heals the other.

use std::collections::{BTreeMap, BTreeSet};

use minikv_proto::metapb::StoreId;
use minikv_server::sim_cluster::SimCluster;

use super::Ctx;
use crate::scenario::{Between, ClogSpec, LatencySpec, LossSpec, PartitionShape, PartitionSpec};

/// Directed links cut by each owner, and the union the network applies.
#[derive(Debug, Default)]
pub struct Links {
    by_owner: BTreeMap<&'static str, BTreeSet<(StoreId, StoreId)>>,
    applied: BTreeSet<(StoreId, StoreId)>,
}

impl Links {
    /// Replaces `owner`'s cut links and updates the network to the new union.
    pub fn set(&mut self, owner: &'static str, cut: BTreeSet<(StoreId, StoreId)>, c: &SimCluster) {
        self.by_owner.insert(owner, cut);
        let union: BTreeSet<(StoreId, StoreId)> =
            self.by_owner.values().flat_map(|s| s.iter().copied()).collect();
        for (a, b) in self.applied.difference(&union) {
            c.unclog_one_way(*a, *b);
        }
        for (a, b) in union.difference(&self.applied) {
            c.clog_one_way(*a, *b);
        }
        self.applied = union;
    }

    /// Restores every link this owns or any owner cut.
    pub fn clear(&mut self, c: &SimCluster) {
        for (a, b) in &self.applied {
            c.unclog_one_way(*a, *b);
        }
        self.by_owner.clear();
        self.applied.clear();
    }
}

/// Both directions of every link between `a` and `b`.
fn across(a: &[StoreId], b: &[StoreId]) -> BTreeSet<(StoreId, StoreId)> {
    let mut cut = BTreeSet::new();
    for x in a {
        for y in b {
            cut.insert((*x, *y));
            cut.insert((*y, *x));
        }
    }
    cut
}

/// The links a shape cuts, over stores in the (random) order given, and its description.
/// `IsolateLeader` and `MuteLeader` target the first store: the caller puts the leader first.
pub fn shape_links(
    shape: PartitionShape,
    ids: &[StoreId],
) -> (BTreeSet<(StoreId, StoreId)>, String) {
    let n = ids.len();
    match shape {
        PartitionShape::Halves => {
            let (a, b) = ids.split_at(n / 2);
            (across(a, b), format!("halves {a:?} | {b:?}"))
        }
        PartitionShape::Isolate | PartitionShape::IsolateLeader => {
            let (a, b) = ids.split_at(1.min(n));
            let what = if shape == PartitionShape::Isolate { "isolate" } else { "isolate-leader" };
            (across(a, b), format!("{what} {a:?} | {b:?}"))
        }
        PartitionShape::MuteLeader => {
            let cut: BTreeSet<(StoreId, StoreId)> =
                ids.iter().skip(1).map(|other| (ids[0], *other)).collect();
            (cut, format!("mute-leader {} -/-> {:?}", ids[0], &ids[1..]))
        }
        PartitionShape::Bridge => {
            if n < 3 {
                return (BTreeSet::new(), "bridge (too few stores: none)".to_string());
            }
            let bridge = ids[0];
            let (l, r) = ids[1..].split_at((n - 1) / 2);
            (across(l, r), format!("bridge {l:?} <{bridge}> {r:?}"))
        }
        PartitionShape::MajoritiesRing => {
            // Each node sees itself and its k nearest on each side: a majority, different for
            // every node.
            let majority = n / 2 + 1;
            let k = majority / 2;
            let mut cut = BTreeSet::new();
            for i in 0..n {
                for j in 0..n {
                    let d = i.abs_diff(j).min(n - i.abs_diff(j));
                    if d > k {
                        cut.insert((ids[i], ids[j]));
                    }
                }
            }
            (cut, format!("majorities-ring {ids:?}"))
        }
    }
}

pub async fn partition(mut ctx: Ctx, spec: PartitionSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 50, 400);
    let shapes = spec.shapes.clone().unwrap_or_else(|| PartitionShape::ALL.to_vec());
    while !ctx.over() {
        let mut ids = ctx.shuffled_stores();
        // One round in four leaves the network whole.
        let (cut, what) = if ctx.below(4) == 0 {
            (BTreeSet::new(), "heal".to_string())
        } else {
            let shape = shapes[ctx.below(shapes.len() as u64) as usize];
            if matches!(shape, PartitionShape::IsolateLeader | PartitionShape::MuteLeader)
                && let Some(leader) = ctx.leader()
                && let Some(at) = ids.iter().position(|id| *id == leader)
            {
                ids.swap(0, at);
            }
            shape_links(shape, &ids)
        };
        {
            let c = ctx.world.cluster();
            ctx.world.links.lock().unwrap_or_else(|e| e.into_inner()).set(
                "partition",
                cut.clone(),
                &c,
            );
        }
        if cut.is_empty() {
            tracing::info!(target: "minikv::sim", "nemesis partition: {what}");
        } else {
            ctx.world.fault("partition", &what);
        }
        let wait = ctx.in_range(every);
        ctx.sleep_ms(wait).await;
    }
    let c = ctx.world.cluster();
    ctx.world.links.lock().unwrap_or_else(|e| e.into_inner()).set("partition", BTreeSet::new(), &c);
}

pub async fn clog(mut ctx: Ctx, spec: ClogSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 100, 600);
    let duration = ctx.between(&spec.duration_ms, "duration_ms", 50, 400);
    if ctx.stores.len() < 2 {
        return;
    }
    while ctx.next_round(every).await {
        let ids = ctx.shuffled_stores();
        let (src, dst) = (ids[0], ids[1]);
        let hold = ctx.in_range(duration);
        {
            let c = ctx.world.cluster();
            let cut = BTreeSet::from([(src, dst)]);
            ctx.world.links.lock().unwrap_or_else(|e| e.into_inner()).set("clog", cut, &c);
        }
        ctx.world.fault("clog", &format!("{src} -> {dst} for {hold} ms"));
        ctx.sleep_ms(hold).await;
        let c = ctx.world.cluster();
        ctx.world.links.lock().unwrap_or_else(|e| e.into_inner()).set("clog", BTreeSet::new(), &c);
    }
}

pub async fn loss(mut ctx: Ctx, spec: LossSpec) {
    let rate = match &spec.rate {
        Some(r) => *r.get_ref(),
        None => {
            let percent = ctx.in_range(Between::new(1, 20));
            let rate = percent as f64 / 100.0;
            ctx.world.pick(format!("{}.rate", ctx.prefix), format!("{rate}"));
            rate
        }
    };
    ctx.world.cluster().set_packet_loss(rate);
    ctx.world.fault("loss", &format!("drop {rate} of messages"));
    while !ctx.over() {
        ctx.sleep_ms(1_000).await;
    }
    ctx.world.cluster().set_packet_loss(0.0);
}

pub async fn latency(mut ctx: Ctx, spec: LatencySpec) {
    let ms = match &spec.ms {
        Some(b) => *b.get_ref(),
        None => {
            let min = ctx.in_range(Between::new(0, 10));
            let max = ctx.in_range(Between::new(min + 1, 100));
            let b = Between::new(min, max);
            ctx.world.pick(format!("{}.ms", ctx.prefix), format!("[{min}, {max}]"));
            b
        }
    };
    ctx.world.cluster().set_latency_ms(ms.min, ms.max);
    ctx.world.fault("latency", &format!("every message takes {}..={} ms", ms.min, ms.max));
    while !ctx.over() {
        ctx.sleep_ms(1_000).await;
    }
    let base = ctx.world.base_latency_ms;
    ctx.world.cluster().set_latency_ms(base.min, base.max);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sees(cut: &BTreeSet<(StoreId, StoreId)>, ids: &[StoreId], x: StoreId) -> usize {
        ids.iter().filter(|y| !cut.contains(&(x, **y))).count()
    }

    #[test]
    fn shapes_cut_what_they_say() {
        let ids = [3, 1, 5, 2, 4];
        let (cut, _) = shape_links(PartitionShape::Halves, &ids);
        assert_eq!(sees(&cut, &ids, 3), 2);
        assert_eq!(sees(&cut, &ids, 2), 3);
        let (cut, _) = shape_links(PartitionShape::Isolate, &ids);
        assert_eq!(sees(&cut, &ids, 3), 1);
        assert_eq!(sees(&cut, &ids, 4), 4);
        let (cut, _) = shape_links(PartitionShape::Bridge, &ids);
        assert_eq!(sees(&cut, &ids, 3), 5, "the bridge sees everyone");
        assert_eq!(sees(&cut, &ids, 1), 3);
        assert!(cut.contains(&(1, 2)) && cut.contains(&(2, 1)) && !cut.contains(&(1, 5)));
        let (cut, _) = shape_links(PartitionShape::MuteLeader, &ids);
        assert_eq!(cut.len(), 4, "only the first store's messages out");
        assert!(cut.contains(&(3, 4)) && !cut.contains(&(4, 3)));
        let (cut, _) = shape_links(PartitionShape::MajoritiesRing, &ids);
        for x in ids {
            assert_eq!(sees(&cut, &ids, x), 3, "every node sees exactly a majority");
        }
        assert!(!cut.contains(&(3, 4)), "the ring wraps around");
    }

    #[test]
    fn every_shape_leaves_self_links_and_only_mute_leader_is_one_way() {
        for n in 1..=7u64 {
            let ids: Vec<StoreId> = (1..=n).collect();
            for shape in PartitionShape::ALL {
                let (cut, _) = shape_links(shape, &ids);
                for (a, b) in &cut {
                    assert_ne!(a, b, "{shape:?} n={n}");
                    if shape != PartitionShape::MuteLeader {
                        assert!(cut.contains(&(*b, *a)), "{shape:?} n={n} not symmetric");
                    }
                }
            }
        }
    }
}
