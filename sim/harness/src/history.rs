//! The run's history: JSON lines in the ../shared/DESIGN.md format, one per client event, with
//! simulated nanoseconds; shared by every workload's clients. Each event is also a debug-level
//! trace line, so a replay shows operations between the store's events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use madsim::time::Instant;

use crate::report::OpCounts;

/// The kind of a history event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Invoke => "invoke",
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    lines: Vec<String>,
    counts: OpCounts,
}

/// Shared recorder; clones append to the same history.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    origin: Instant,
    next_process: Arc<AtomicU64>,
}

impl Recorder {
    /// A history whose time zero is now (call inside the runtime).
    pub fn new() -> Recorder {
        Recorder {
            inner: Arc::default(),
            origin: Instant::now(),
            next_process: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A process id no other client has used (a client that saw an unknown outcome takes a
    /// new one, as Jepsen does).
    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Records one event; `value` is already JSON.
    pub fn event(&self, process: u64, kind: Kind, f: &str, key: &str, value: &str) {
        self.push(process, kind, f, &format!(r#""key":{},"#, json_str(key)), key, value);
    }

    /// Records one event of a transaction (`f` "txn", no key); `value` is the JSON list of
    /// micro-ops.
    pub fn txn_event(&self, process: u64, kind: Kind, value: &str) {
        self.push(process, kind, "txn", "", "", value);
    }

    /// `key_field` is the `"key":...,` member (empty for none); `key` labels the trace line.
    fn push(&self, process: u64, kind: Kind, f: &str, key_field: &str, key: &str, value: &str) {
        let time_ns = self.origin.elapsed().as_nanos();
        let line = format!(
            r#"{{"process":{process},"type":"{}","f":"{f}",{key_field}"value":{value},"time":{time_ns}}}"#,
            kind.name()
        );
        let key = if key.is_empty() { String::new() } else { format!(" {key}") };
        tracing::debug!(target: "minikv::client", "p{process} {} {f}{key} {value}", kind.name());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            Kind::Invoke => inner.counts.invoked += 1,
            Kind::Ok => inner.counts.ok += 1,
            Kind::Fail => inner.counts.fail += 1,
            Kind::Info => inner.counts.info += 1,
        }
        inner.lines.push(line);
    }

    pub fn counts(&self) -> OpCounts {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    /// The history as JSON lines.
    pub fn text(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = inner.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// A JSON string literal (keys and values of the workloads never need escaping beyond this).
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// JSON for an optional string value: `null` when absent.
pub fn json_opt(s: &Option<String>) -> String {
    s.as_deref().map_or("null".to_string(), json_str)
}
