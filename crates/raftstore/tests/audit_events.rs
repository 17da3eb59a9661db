//! The audit events a checker relies on: every applied entry, every leadership, every
//! installed snapshot, in a fixed format. Every test here installs its own subscriber (a
//! callsite first hit on a thread without one could cache "not interested").

mod common;

use std::sync::{Arc, Mutex};

use common::{Cluster, REGION_ID, test_config};
use minikv_raftstore::StoreConfig;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One recorded event: its target and its fields, in order, as `name=value` strings.
type Recorded = (String, Vec<String>);

#[derive(Default)]
struct FieldsVisitor(Vec<String>);

impl Visit for FieldsVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push(format!("{}={value}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Only the message may arrive this way: every audit number must be a u64.
        self.0.push(format!("{}:debug={value:?}", field.name()));
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut v = FieldsVisitor::default();
        event.record(&mut v);
        self.0.lock().unwrap().push((event.metadata().target().to_string(), v.0));
    }
}

fn audit_events(recorded: &[Recorded]) -> Vec<Vec<String>> {
    recorded.iter().filter(|(t, _)| t == "minikv::audit").map(|(_, f)| f.clone()).collect()
}

fn field(fields: &[String], name: &str) -> u64 {
    let prefix = format!("{name}=");
    let v = fields.iter().find_map(|f| f.strip_prefix(&prefix)).unwrap_or_else(|| {
        panic!("no u64 field {name} in {fields:?}");
    });
    v.parse().unwrap_or_else(|e| panic!("field {name}={v}: {e}"))
}

#[test]
fn audit_events_name_every_leader_and_every_applied_entry_identically_everywhere() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    tracing::subscriber::with_default(subscriber, || {
        let mut c = Cluster::new(3, 3, 21, test_config());
        c.wait_leader(100);
        for i in 0..10u32 {
            c.put(format!("k{i}").as_bytes(), b"v");
        }
        c.run_ticks(10);
    });
    let recorded = recorder.0.lock().unwrap().clone();
    let audits = audit_events(&recorded);
    let leaders: Vec<_> = audits.iter().filter(|f| f[0] == "event=leader").collect();
    assert!(!leaders.is_empty(), "no leader event in {audits:?}");
    for l in &leaders {
        assert_eq!(l.len(), 3, "leader event fields: {l:?}");
        assert_eq!(l[1], format!("region={REGION_ID}"));
        assert!(l[2].starts_with("term="), "{l:?}");
    }
    let mut terms: Vec<u64> = leaders.iter().map(|l| field(l, "term")).collect();
    let n = terms.len();
    terms.dedup();
    assert_eq!(terms.len(), n, "two leaders in one term: {leaders:?}");
    // Every store applied the same entries: per index, one (term, digest), seen three times.
    let mut applied: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = Default::default();
    for a in audits.iter().filter(|f| f[0] == "event=apply") {
        let names: Vec<&str> = a.iter().map(|f| f.split('=').next().unwrap()).collect();
        assert_eq!(names, ["event", "region", "index", "term", "digest"], "{a:?}");
        applied.entry(field(a, "index")).or_default().push((field(a, "term"), field(a, "digest")));
    }
    assert!(applied.len() >= 11, "the no-op and ten puts: {applied:?}");
    for (index, seen) in &applied {
        assert_eq!(seen.len(), 3, "index {index} applied {} times", seen.len());
        assert!(seen.iter().all(|s| *s == seen[0]), "index {index} differs: {seen:?}");
    }
    let traces: Vec<_> = recorded.iter().filter(|(t, _)| t == "minikv::trace").collect();
    assert!(
        traces.iter().any(|(_, f)| f.iter().any(|x| x.contains("became leader term"))),
        "{traces:?}"
    );
}

#[test]
fn snapshot_installation_is_audited_with_its_index_and_term() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let config = StoreConfig {
        raft_log_gc_count_limit: 20,
        raft_log_gc_threshold_entries: 10,
        ..test_config()
    };
    tracing::subscriber::with_default(subscriber, || {
        let mut c = Cluster::new(3, 3, 22, config);
        let leader = c.wait_leader(100);
        let lagging = (1..=3).find(|id| *id != leader).unwrap();
        c.crash(lagging);
        for i in 0..60u32 {
            c.put(format!("key{i:03}").as_bytes(), b"x");
        }
        c.run_ticks(20);
        c.restart(lagging);
        c.run_ticks(80);
        assert!(c.store(lagging).stats().snapshots_received >= 1);
    });
    let audits = audit_events(&recorder.0.lock().unwrap());
    let snaps: Vec<_> = audits.iter().filter(|f| f[0] == "event=snapshot_applied").collect();
    assert!(!snaps.is_empty(), "no snapshot_applied event");
    for s in snaps {
        let names: Vec<&str> = s.iter().map(|f| f.split('=').next().unwrap()).collect();
        assert_eq!(names, ["event", "region", "index", "term"], "{s:?}");
        assert!(field(s, "index") > 20, "{s:?}");
    }
}
