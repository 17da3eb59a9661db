//! Targeted faults: message rules (drop, delay or duplicate one kind of Raft message from or
//! to one store, through `minikv_hooks`' send-path hook), deposing new leaders right after
//! their election (isolated or muted before their first entries reach the others), and strikes
//! at a moment in a store's own code (a probe: it is muted or loses power right there).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use madsim::net::NetSim;
use madsim::task::NodeId;
use minikv_hooks::{MESSAGE_KINDS, MessageAction, MessageRule, Probe, set_message_rule, strike_at};
use minikv_proto::metapb::StoreId;
use minikv_server::sim_cluster::FIRST_REGION_ID;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::Ctx;
use super::net::shape_links;
use crate::scenario::{Between, DeposeSpec, MessageSpec, PartitionShape, StrikeSpec};

pub async fn message(mut ctx: Ctx, spec: MessageSpec) {
    let every = ctx.between(&spec.every_ms, "every_ms", 100, 500);
    let duration = ctx.between(&spec.duration_ms, "duration_ms", 50, 400);
    let delay = ctx.between(&spec.delay_ms, "delay_ms", 5, 100);
    let rate = match &spec.rate {
        Some(r) => *r.get_ref(),
        None => {
            let rate = ctx.in_range(Between::new(20, 100)) as f64 / 100.0;
            ctx.world.pick(format!("{}.rate", ctx.prefix), format!("{rate}"));
            rate
        }
    };
    let kinds: Vec<String> = spec.kinds.as_ref().map_or_else(
        || std::iter::once("any").chain(MESSAGE_KINDS).map(str::to_string).collect(),
        |ks| ks.iter().map(|k| k.get_ref().clone()).collect(),
    );
    let actions: Vec<MessageAction> = spec.actions.as_ref().map_or_else(
        || MessageAction::ALL.to_vec(),
        |a| a.iter().filter_map(|x| MessageAction::from_name(x.get_ref())).collect(),
    );
    while ctx.next_round(every).await {
        let kind = kinds[ctx.below(kinds.len() as u64) as usize].clone();
        let action = actions[ctx.below(actions.len() as u64) as usize];
        let leader = ctx.leader();
        let store = match leader {
            Some(l) if ctx.below(2) == 0 => l,
            _ => ctx.shuffled_stores()[0],
        };
        let outbound = ctx.below(2) == 0;
        let hold = ctx.in_range(duration);
        let rule = MessageRule {
            kinds: MESSAGE_KINDS.iter().copied().filter(|k| kind == "any" || *k == kind).collect(),
            from_store: outbound.then_some(store),
            to_store: (!outbound).then_some(store),
            region: Some(FIRST_REGION_ID),
            action,
            rate_ppm: (rate * 1e6) as u32,
            delay_ms: (delay.min, delay.max),
        };
        let dir = if outbound { "from" } else { "to" };
        ctx.world.fault(
            "message",
            &format!(
                "{} {rate} of {kind} messages {dir} store {store} for {hold} ms",
                action.name()
            ),
        );
        set_message_rule(Some(rule));
        ctx.sleep_ms(hold).await;
        set_message_rule(None);
    }
    set_message_rule(None);
}

pub async fn depose(mut ctx: Ctx, spec: DeposeSpec) {
    let percent = ctx.value(&spec.percent, "percent", 20, 100);
    let after = ctx.between(&spec.after_ms, "after_ms", 0, 10);
    let hold_for = ctx.between(&spec.hold_ms, "hold_ms", 30, 300);
    let mut seen: Option<(StoreId, u64)> = None;
    while !ctx.over() {
        ctx.sleep_ms(1).await;
        let now = ctx.leader_term();
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        let Some((leader, term)) = now else { continue };
        if ctx.below(100) >= percent {
            continue;
        }
        let wait = ctx.in_range(after);
        ctx.sleep_ms(wait).await;
        let shape = if ctx.below(2) == 0 {
            PartitionShape::IsolateLeader
        } else {
            PartitionShape::MuteLeader
        };
        let mut ids = ctx.stores.clone();
        if let Some(at) = ids.iter().position(|id| *id == leader) {
            ids.swap(0, at);
        }
        let (cut, what) = shape_links(shape, &ids);
        let hold = ctx.in_range(hold_for);
        set_links(&ctx, cut);
        ctx.world.fault("depose", &format!("leader of term {term}: {what} for {hold} ms"));
        ctx.sleep_ms(hold).await;
        set_links(&ctx, BTreeSet::new());
    }
    set_links(&ctx, BTreeSet::new());
}

fn set_links(ctx: &Ctx, cut: BTreeSet<(StoreId, StoreId)>) {
    let c = ctx.world.cluster();
    ctx.world.links.lock().unwrap_or_else(|e| e.into_inner()).set("depose", cut, &c);
}

/// The strikes of a phase, shared by the stores' code (which triggers them) and the strike
/// task (which carries them out).
#[derive(Debug)]
struct Strikes {
    /// Triggered, not yet carried out, by madsim node: the probe hit and how long after it the
    /// strike lands (0: at once, before the store's next message leaves).
    pending: BTreeMap<NodeId, (Probe, u64)>,
    /// Nodes under a strike: each takes one at a time.
    active: BTreeSet<NodeId>,
    /// The seeded stream the decisions draw from.
    rng: ChaCha8Rng,
}

pub async fn strike(mut ctx: Ctx, spec: StrikeSpec) {
    let percent = ctx.value(&spec.percent, "percent", 10, 100);
    let after = ctx.between(&spec.after_ms, "after_ms", 0, 5);
    let hold_for = ctx.between(&spec.hold_ms, "hold_ms", 20, 300);
    let probes: Vec<Probe> =
        spec.probes.iter().filter_map(|p| Probe::from_name(p.get_ref())).collect();
    let actions: Vec<String> = spec.actions.as_ref().map_or_else(
        || vec!["mute".into(), "crash".into()],
        |a| a.iter().map(|x| x.get_ref().clone()).collect(),
    );
    let stores: BTreeMap<NodeId, StoreId> = {
        let c = ctx.world.cluster();
        c.store_ids().into_iter().map(|id| (c.node_id(id), id)).collect()
    };
    let strikes = Arc::new(Mutex::new(Strikes {
        pending: BTreeMap::new(),
        active: BTreeSet::new(),
        rng: ChaCha8Rng::seed_from_u64(ctx.rng.next_u64()),
    }));
    // Runs inside a store's code at the probe: decides and, for a strike at once, cuts the
    // node's messages out right there.
    let (shared, known) = (strikes.clone(), stores.clone());
    let callback: Rc<dyn Fn(Probe)> = Rc::new(move |p| {
        let node = madsim::plugin::node();
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains_key(&node) || s.active.contains(&node) {
            return;
        }
        if s.rng.next_u64() % 100 >= percent {
            return;
        }
        let wait = after.min + s.rng.next_u64() % (after.max - after.min + 1);
        if wait == 0 {
            NetSim::current().clog_node_out(node);
        }
        s.active.insert(node);
        s.pending.insert(node, (p, wait));
    });
    strike_at(&probes, Some(callback));
    let mut handlers = Vec::new();
    while !ctx.over() {
        ctx.sleep_ms(1).await;
        let due = std::mem::take(&mut strikes.lock().unwrap_or_else(|e| e.into_inner()).pending);
        for (node, (probe, wait)) in due {
            let action = actions[ctx.below(actions.len() as u64) as usize].clone();
            let hold = ctx.in_range(hold_for);
            let (world, store, end) = (ctx.world.clone(), stores[&node], ctx.end);
            let strikes = strikes.clone();
            handlers.push(madsim::task::spawn(async move {
                let sleep = |ms: u64| {
                    let left = end.saturating_duration_since(madsim::time::Instant::now());
                    madsim::time::sleep(std::time::Duration::from_millis(ms).min(left))
                };
                sleep(wait).await;
                NetSim::current().clog_node_out(node);
                let when = if wait == 0 { "at".to_string() } else { format!("{wait} ms after") };
                let what = format!("store {store} {when} {}: {action} for {hold} ms", probe.name());
                world.fault("strike", &what);
                if action == "crash" {
                    world.cluster().crash(store);
                }
                sleep(hold).await;
                NetSim::current().unclog_node_out(node);
                if action == "crash" {
                    world.cluster().restart(store);
                }
                strikes.lock().unwrap_or_else(|e| e.into_inner()).active.remove(&node);
            }));
        }
    }
    strike_at(&[], None);
    for h in handlers {
        let _ = h.await;
    }
    // Strikes triggered after the last round never landed: let their nodes speak again.
    let left = std::mem::take(&mut strikes.lock().unwrap_or_else(|e| e.into_inner()).pending);
    for node in left.into_keys() {
        NetSim::current().unclog_node_out(node);
    }
}
