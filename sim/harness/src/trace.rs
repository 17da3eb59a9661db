//! The run's trace: a `tracing` subscriber, installed on the run's thread only, that turns the
//! store's `minikv*` events into lines `<sim time> <node> <region> <what happened>`, feeds the
//! Raft audit events to the auditor, and hashes the info-level lines into `trace_hash`.
//!
//! Lines are built only from simulated time, the madsim node the event came from, and the
//! event's own fields in the order the code wrote them, so two runs of the same scenario and
//! seed produce the same text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use madsim::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::TraceLevel;
use crate::audit::Auditor;

/// Events of this target are Raft audit records, not trace lines.
pub const AUDIT_TARGET: &str = "minikv::audit";
/// The harness's own lines (phases, faults, checks).
pub const HARNESS_TARGET: &str = "minikv::sim";

/// Shared state of a run's trace.
struct Inner {
    origin: Instant,
    level: TraceLevel,
    /// madsim node id (its Display form) -> our name for it (`s1`, `c3`, `nemesis`).
    names: BTreeMap<String, String>,
    lines: Vec<String>,
    /// XXH64 over the info-level lines, fed as they come.
    hasher: xxhash_rust::xxh64::Xxh64,
    auditor: Auditor,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("level", &self.level)
            .field("lines", &self.lines.len())
            .field("auditor", &self.auditor)
            .finish_non_exhaustive()
    }
}

/// Handle on a run's trace; clones share it.
#[derive(Debug, Clone)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
}

impl Trace {
    /// Starts a trace whose time zero is now (call inside the runtime).
    pub fn new(level: TraceLevel) -> Trace {
        Trace {
            inner: Arc::new(Mutex::new(Inner {
                origin: Instant::now(),
                level,
                names: BTreeMap::new(),
                lines: Vec::new(),
                hasher: xxhash_rust::xxh64::Xxh64::new(0),
                auditor: Auditor::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulated time zero of the trace.
    pub fn origin(&self) -> Instant {
        self.lock().origin
    }

    /// Names a madsim node in trace lines.
    pub fn name_node(&self, id: madsim::task::NodeId, name: &str) {
        self.lock().names.insert(id.to_string(), name.to_string());
    }

    /// The text at the run's level, one event per line.
    pub fn text(&self) -> String {
        let inner = self.lock();
        let mut s = inner.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// XXH64 of the info-level lines, 16 hex digits.
    pub fn hash(&self) -> String {
        format!("{:016x}", self.lock().hasher.digest())
    }

    /// Runs `f` on the auditor.
    pub fn with_auditor<R>(&self, f: impl FnOnce(&mut Auditor) -> R) -> R {
        f(&mut self.lock().auditor)
    }

    /// The subscriber to install (thread-locally) for the run.
    pub fn subscriber(&self) -> TraceSubscriber {
        TraceSubscriber { trace: self.clone() }
    }

    fn record(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let node_id = madsim::plugin::node().to_string();
        let mut inner = self.lock();
        let node = inner.names.get(&node_id).cloned().unwrap_or_else(|| format!("n{node_id}"));
        let info = *meta.level() <= Level::INFO;
        if meta.target() == AUDIT_TARGET {
            inner.auditor.observe(&node, &fields.numbers, fields.event.as_deref());
        }
        if !info && inner.level < TraceLevel::Debug {
            return;
        }
        let elapsed = inner.origin.elapsed();
        let region = fields.region.map_or("-".to_string(), |r| format!("r{r}"));
        let mut line = format!(
            "{:>6}.{:03} {node:<7} {region:<4} {}",
            elapsed.as_millis(),
            elapsed.subsec_micros() % 1_000,
            fields.text
        );
        while line.ends_with(' ') {
            line.pop();
        }
        if info {
            inner.hasher.update(line.as_bytes());
            inner.hasher.update(b"\n");
        }
        inner.lines.push(line);
    }
}

/// The fault kinds trace `text` shows striking during `phase` (`nemesis <kind>: ...` lines
/// between that phase's start and the next phase's, or the heal), sorted, each once. Tests use
/// it to require that every fault a phase configures really struck.
pub fn struck_in_phase(text: &str, phase: usize) -> Vec<String> {
    let (start, next) = (format!("phase {phase} ("), format!("phase {} (", phase + 1));
    let lines = text.lines().skip_while(|l| !l.contains(&start)).skip(1);
    let lines = lines.take_while(|l| !l.contains(&next) && !l.contains("faults healed"));
    let mut kinds: Vec<String> = lines
        .filter_map(|l| l.rsplit_once(" nemesis ")?.1.split_once(':'))
        .map(|(kind, _)| kind.to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// The value of the last `metric <name> = <value>` line of trace `text`.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("metric {name} = ");
    text.lines().rev().find_map(|l| l.split_once(&prefix)?.1.trim().parse().ok())
}

/// Event fields, split into the region, the event kind and the rest as `message k=v ...`.
#[derive(Debug, Default)]
struct Fields {
    region: Option<u64>,
    event: Option<String>,
    text: String,
    numbers: Vec<(&'static str, u64)>,
}

impl Fields {
    fn push(&mut self, name: &str, value: &dyn std::fmt::Display) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        let _ = write!(self.text, "{name}={value}");
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.numbers.push((field.name(), value));
        if field.name() == "region" {
            self.region = Some(value);
            return;
        }
        self.push(field.name(), &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(v) = u64::try_from(value) {
            self.numbers.push((field.name(), v));
            if field.name() == "region" {
                self.region = Some(v);
                return;
            }
        }
        self.push(field.name(), &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.event = Some(value.to_string());
        }
        self.push(field.name(), &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let message = format!("{value:?}");
            self.text =
                if self.text.is_empty() { message } else { format!("{message} {}", self.text) };
            return;
        }
        self.push(field.name(), &format_args!("{value:?}"));
    }
}

/// The subscriber of one run: `minikv*` events only; spans are not tracked.
#[derive(Debug)]
pub struct TraceSubscriber {
    trace: Trace,
}

impl Subscriber for TraceSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && metadata.target().starts_with("minikv")
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.trace.record(event);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
     0.000 main    -    phase 0 (a) starts for 100 ms
    10.000 nemesis -    nemesis kill: store 2 loses power for 50 ms
    20.000 nemesis -    nemesis partition: [1] | [2, 3]
    60.000 nemesis -    nemesis restart: store 2 powers on
   100.000 main    -    phase 1 (b) starts for 100 ms
   150.000 nemesis -    nemesis loss: 10%
   200.000 main    -    faults healed; workloads finish within 10000 ms
   210.000 nemesis -    nemesis kill: too late
   300.000 main    -    metric store.lease_reads = 0
   301.000 main    -    metric store.lease_reads = 42
";

    #[test]
    fn struck_in_phase_reads_the_phase_between_its_start_and_the_next() {
        assert_eq!(struck_in_phase(TEXT, 0), ["kill", "partition", "restart"]);
        assert_eq!(struck_in_phase(TEXT, 1), ["loss"]);
        assert!(struck_in_phase(TEXT, 2).is_empty());
    }

    #[test]
    fn metric_takes_the_last_value() {
        assert_eq!(metric(TEXT, "store.lease_reads"), Some(42));
        assert_eq!(metric(TEXT, "store.other"), None);
    }
}
