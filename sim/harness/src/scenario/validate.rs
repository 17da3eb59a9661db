//! Validation of a parsed scenario: every value in range, every fault and workload possible on
//! the cluster it names; each error carries the span of the offending value.

use std::ops::Range;

use toml::Spanned;

use super::{Between, FaultsSpec, PhaseSpec, Scenario};

impl Scenario {
    pub(super) fn validate(&self) -> Result<(), (Range<usize>, String)> {
        let c = &self.cluster;
        within(&c.stores, "cluster.stores", 1, 9)?;
        within(&c.regions, "cluster.regions", 1, 1).map_err(|(s, m)| {
            (s, format!("{m} (one region at bootstrap until region splits land)"))
        })?;
        within(&c.tick_ms, "cluster.tick_ms", 1, 1_000)?;
        within(&c.heartbeat_ticks, "cluster.heartbeat_ticks", 1, 100)?;
        let min_election = c.heartbeat_ticks.get_ref() + 1;
        within(&c.election_ticks, "cluster.election_ticks", min_election, 1_000)?;
        between(&c.latency_ms, "cluster.latency_ms", 0, 10_000)?;
        within(&c.log_gc_count_limit, "cluster.log_gc_count_limit", 1, u64::MAX)?;
        within(&c.log_gc_tick_ticks, "cluster.log_gc_tick_ticks", 1, u64::MAX)?;
        within(&c.snapshot_chunk_bytes, "cluster.snapshot_chunk_bytes", 1 << 10, 64 << 20)?;
        within(&c.buggify_enable_ppm, "cluster.buggify_enable_ppm", 0, 1_000_000)?;
        within(&self.check.liveness_ms, "check.liveness_ms", 100, 600_000)?;
        within(&c.pd_nodes, "cluster.pd_nodes", 0, 7)?;
        within(&c.pd_tso_window_ms, "cluster.pd_tso_window_ms", 1, 600_000)?;
        within(&c.pd_max_replicas, "cluster.pd_max_replicas", 1, *c.stores.get_ref())?;
        within(&c.pd_max_store_down_ms, "cluster.pd_max_store_down_ms", 100, 3_600_000)?;
        within(&c.pd_heartbeat_ms, "cluster.pd_heartbeat_ms", 10, 60_000)?;
        if let Some(m) = &self.check.raft_log_entries_max {
            within(m, "check.raft_log_entries_max", 1, u64::MAX)?;
        }
        if self.phases.is_empty() {
            return Err((0..0, "a scenario needs at least one [[phase]]".to_string()));
        }
        let stores = *c.stores.get_ref();
        for (i, p) in self.phases.iter().enumerate() {
            let at = |key: &str| format!("phase[{i}] ({}).{key}", p.name);
            within(&p.duration_ms, &at("duration_ms"), 1, 3_600_000)?;
            if let Some(w) = &p.workloads.register {
                within(&w.clients, &at("workloads.register.clients"), 1, 200)?;
                within(&w.keys, &at("workloads.register.keys"), 1, 1_000)?;
            }
            if let Some(w) = &p.workloads.readers {
                within(&w.clients, &at("workloads.readers.clients"), 1, 200)?;
                if let Some(f) = &w.fresh_writers {
                    within(f, &at("workloads.readers.fresh_writers"), 0, 200)?;
                }
                within(&w.keys, &at("workloads.readers.keys"), 1, 1_000)?;
            }
            if let Some(w) = &p.workloads.append {
                within(&w.clients, &at("workloads.append.clients"), 1, 99)?;
                within(&w.keys, &at("workloads.append.keys"), 1, 9)?;
            }
            if let Some(w) = &p.workloads.batch {
                within(&w.clients, &at("workloads.batch.clients"), 1, 99)?;
                within(&w.keys, &at("workloads.batch.keys"), 2, 99)?;
            }
            if let Some(w) = &p.workloads.tso {
                within(&w.clients, &at("workloads.tso.clients"), 1, 200)?;
                within(&w.max_count, &at("workloads.tso.max_count"), 1, 1 << 16)?;
                if *c.pd_nodes.get_ref() == 0 {
                    let m = format!("{} needs cluster.pd_nodes of at least 1", at("workloads.tso"));
                    return Err((w.clients.span(), m));
                }
            }
            self.validate_pd_faults(i, p)?;
            self.validate_faults(i, p, &p.faults, "faults", stores)?;
            self.validate_faults(i, p, &p.pd_faults, "pd_faults", *c.pd_nodes.get_ref())?;
        }
        Ok(())
    }

    /// PD nodes take the faults of nodes and networks, not those aimed at the stores' region.
    fn validate_pd_faults(&self, i: usize, p: &PhaseSpec) -> Result<(), (Range<usize>, String)> {
        let at = |key: &str| format!("phase[{i}] ({}).{key}", p.name);
        let kinds = p.pd_faults.kinds();
        if !kinds.is_empty() && *self.cluster.pd_nodes.get_ref() == 0 {
            return Err((
                p.duration_ms.span(),
                at("pd_faults needs cluster.pd_nodes of at least 1"),
            ));
        }
        if let Some(lose) = &p.faults.lose {
            if *self.cluster.pd_nodes.get_ref() == 0 {
                let m = at("faults.lose needs cluster.pd_nodes of at least 1 (PD re-replicates)");
                return Err((p.duration_ms.span(), m));
            }
            let spare = self.cluster.stores.get_ref() - self.cluster.pd_max_replicas.get_ref();
            if let Some(count) = &lose.count {
                within(count, &at("faults.lose.count"), 1, spare)?;
            } else if spare == 0 {
                let m = at("faults.lose: no store to spare (cluster.stores = pd_max_replicas)");
                return Err((p.duration_ms.span(), m));
            }
            opt_between(&lose.at_ms, &at("faults.lose.at_ms"), 0, *p.duration_ms.get_ref())?;
        }
        for kind in ["membership", "message", "strike", "lose"] {
            if kinds.contains(&kind) {
                let m = at(&format!("pd_faults.{kind}: not a fault PD nodes take (stores only)"));
                return Err((p.duration_ms.span(), m));
            }
        }
        Ok(())
    }

    /// One phase's fault tables (`faults` or `pd_faults`) against a group of `nodes` nodes.
    fn validate_faults(
        &self,
        i: usize,
        p: &PhaseSpec,
        f: &FaultsSpec,
        table: &str,
        stores: u64,
    ) -> Result<(), (Range<usize>, String)> {
        let at = |key: &str| {
            format!("phase[{i}] ({}).{table}.{}", p.name, key.trim_start_matches("faults."))
        };
        {
            if let Some(x) = &f.partition {
                opt_between(&x.every_ms, &at("faults.partition.every_ms"), 1, 600_000)?;
                if x.shapes.as_ref().is_some_and(Vec::is_empty) {
                    return Err((p.duration_ms.span(), at("faults.partition.shapes: empty")));
                }
            }
            if let Some(x) = &f.message {
                opt_between(&x.every_ms, &at("faults.message.every_ms"), 1, 600_000)?;
                opt_between(&x.duration_ms, &at("faults.message.duration_ms"), 1, 600_000)?;
                opt_between(&x.delay_ms, &at("faults.message.delay_ms"), 0, 60_000)?;
                for k in x.kinds.iter().flatten() {
                    if k.get_ref() != "any"
                        && !minikv_hooks::MESSAGE_KINDS.contains(&k.get_ref().as_str())
                    {
                        let m = format!(
                            "{}: unknown message kind `{}` (known: any, {})",
                            at("faults.message.kinds"),
                            k.get_ref(),
                            minikv_hooks::MESSAGE_KINDS.join(", ")
                        );
                        return Err((k.span(), m));
                    }
                }
                for a in x.actions.iter().flatten() {
                    if minikv_hooks::MessageAction::from_name(a.get_ref()).is_none() {
                        let m = format!(
                            "{}: unknown action `{}` (known: drop, delay, duplicate)",
                            at("faults.message.actions"),
                            a.get_ref()
                        );
                        return Err((a.span(), m));
                    }
                }
                if x.kinds.as_ref().is_some_and(Vec::is_empty)
                    || x.actions.as_ref().is_some_and(Vec::is_empty)
                {
                    return Err((
                        p.duration_ms.span(),
                        at("faults.message: empty kinds or actions"),
                    ));
                }
                if let Some(rate) = &x.rate
                    && !(*rate.get_ref() > 0.0 && *rate.get_ref() <= 1.0)
                {
                    let m =
                        format!("{} must be in (0, 1], got {}", at("faults.message.rate"), rate);
                    return Err((rate.span(), m));
                }
            }
            if let Some(x) = &f.strike {
                if x.probes.is_empty() {
                    return Err((p.duration_ms.span(), at("faults.strike.probes: empty")));
                }
                for name in &x.probes {
                    if minikv_hooks::Probe::from_name(name.get_ref()).is_none() {
                        let known: Vec<&str> =
                            minikv_hooks::Probe::ALL.iter().map(|p| p.name()).collect();
                        let m = format!(
                            "{}: unknown probe `{}` (known: {})",
                            at("faults.strike.probes"),
                            name.get_ref(),
                            known.join(", ")
                        );
                        return Err((name.span(), m));
                    }
                }
                for a in x.actions.iter().flatten() {
                    if !["mute", "crash"].contains(&a.get_ref().as_str()) {
                        let m = format!(
                            "{}: unknown action `{}` (known: mute, crash)",
                            at("faults.strike.actions"),
                            a.get_ref()
                        );
                        return Err((a.span(), m));
                    }
                }
                if x.actions.as_ref().is_some_and(Vec::is_empty) {
                    return Err((p.duration_ms.span(), at("faults.strike.actions: empty")));
                }
                if let Some(pc) = &x.percent {
                    within(pc, &at("faults.strike.percent"), 1, 100)?;
                }
                opt_between(&x.after_ms, &at("faults.strike.after_ms"), 0, 60_000)?;
                opt_between(&x.hold_ms, &at("faults.strike.hold_ms"), 1, 600_000)?;
            }
            if let Some(x) = &f.depose {
                if let Some(pc) = &x.percent {
                    within(pc, &at("faults.depose.percent"), 1, 100)?;
                }
                opt_between(&x.after_ms, &at("faults.depose.after_ms"), 0, 60_000)?;
                opt_between(&x.hold_ms, &at("faults.depose.hold_ms"), 1, 600_000)?;
            }
            if let Some(x) = &f.clog {
                opt_between(&x.every_ms, &at("faults.clog.every_ms"), 1, 600_000)?;
                opt_between(&x.duration_ms, &at("faults.clog.duration_ms"), 1, 600_000)?;
            }
            if let Some(x) = &f.loss
                && let Some(rate) = &x.rate
                && !(0.0..=0.5).contains(rate.get_ref())
            {
                let m = format!("{} must be in [0, 0.5], got {}", at("faults.loss.rate"), rate);
                return Err((rate.span(), m));
            }
            if let Some(x) = &f.latency {
                opt_between(&x.ms, &at("faults.latency.ms"), 0, 10_000)?;
            }
            if let Some(x) = &f.kill {
                opt_between(&x.every_ms, &at("faults.kill.every_ms"), 1, 600_000)?;
                opt_between(&x.down_ms, &at("faults.kill.down_ms"), 1, 600_000)?;
                if let Some(m) = &x.max_down {
                    within(m, &at("faults.kill.max_down"), 1, stores)?;
                }
                if let Some(a) = &x.all_at_ms {
                    within(a, &at("faults.kill.all_at_ms"), 0, *p.duration_ms.get_ref())?;
                }
            }
            if let Some(x) = &f.pause {
                opt_between(&x.every_ms, &at("faults.pause.every_ms"), 1, 600_000)?;
                opt_between(&x.pause_ms, &at("faults.pause.pause_ms"), 1, 600_000)?;
            }
            if let Some(x) = &f.clock {
                opt_between(&x.every_ms, &at("faults.clock.every_ms"), 1, 600_000)?;
                if let Some(m) = &x.max_offset_ms {
                    within(m, &at("faults.clock.max_offset_ms"), 0, 3_600_000)?;
                }
                if let Some(m) = &x.max_drift_ppm {
                    within(m, &at("faults.clock.max_drift_ppm"), 0, 500_000)?;
                }
                if let Some(m) = &x.leader_ahead_ms {
                    within(m, &at("faults.clock.leader_ahead_ms"), 1, 3_600_000)?;
                }
            }
            if let Some(x) = &f.disk {
                if let Some(m) = &x.read_error_ppm {
                    within(m, &at("faults.disk.read_error_ppm"), 0, 100_000)?;
                }
                if let Some(m) = &x.crash_keep_ppm {
                    within(m, &at("faults.disk.crash_keep_ppm"), 0, 1_000_000)?;
                }
                let off =
                    x.latent_every_ms.as_ref().is_some_and(|b| *b.get_ref() == Between::new(0, 0));
                if !off {
                    opt_between(
                        &x.latent_every_ms,
                        &at("faults.disk.latent_every_ms"),
                        1,
                        600_000,
                    )?;
                }
            }
            if let Some(x) = &f.membership {
                opt_between(&x.every_ms, &at("faults.membership.every_ms"), 1, 600_000)?;
                if stores < 3 {
                    let m = format!("{} needs at least 3 stores", at("faults.membership"));
                    return Err((p.duration_ms.span(), m));
                }
            }
        }
        Ok(())
    }
}

fn within(v: &Spanned<u64>, key: &str, min: u64, max: u64) -> Result<(), (Range<usize>, String)> {
    let x = *v.get_ref();
    if x < min || x > max {
        let bound =
            if max == u64::MAX { format!(">= {min}") } else { format!("in [{min}, {max}]") };
        return Err((v.span(), format!("{key} must be {bound}, got {x}")));
    }
    Ok(())
}

fn between(
    v: &Spanned<Between>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<(), (Range<usize>, String)> {
    let b = *v.get_ref();
    if b.min > b.max || b.min < min || b.max > max {
        let m = format!(
            "{key} must be [min, max] with {min} <= min <= max <= {max}, got [{}, {}]",
            b.min, b.max
        );
        return Err((v.span(), m));
    }
    Ok(())
}

fn opt_between(
    v: &Option<Spanned<Between>>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<(), (Range<usize>, String)> {
    v.as_ref().map_or(Ok(()), |v| between(v, key, min, max))
}
