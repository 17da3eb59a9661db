//! minikv-sim: the simulation harness. A scenario file (cluster, phases, workloads, faults)
//! and a seed decide a whole run: the cluster on madsim, the nemesis, the workloads' clients,
//! the history, the trace and the checks. Same scenario and seed, same trace hash.
//!
//! Runs need the `--cfg madsim` build (`cargo xtask sim` builds it); the file formats and the
//! sweep/replay plumbing compile in both builds.

pub mod audit;
pub mod batch_check;
pub mod bench;
pub mod canaries;
pub mod cli;
pub mod determinism;
pub mod memory;
pub mod report;
pub mod scenario;
pub mod seeds;
pub mod streams;
pub mod sweep;

#[cfg(madsim)]
pub mod history;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod placement;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod workload;

pub use report::{CheckResult, OpCounts, Report, Verdict};
pub use scenario::{Scenario, ScenarioError};

/// How much a run traces. `Info` is what `trace_hash` covers; `Debug` adds client operations
/// and Raft audit events (replays use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TraceLevel {
    #[default]
    Info,
    Debug,
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Level of the returned trace text. The hash always covers the `Info` lines only, so it
    /// does not depend on this.
    pub trace_level: TraceLevel,
}

/// Everything one run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub report: Report,
    /// The history, JSON lines (../shared/DESIGN.md format).
    pub history: String,
    /// The trace at the requested level, one event per line.
    pub trace: String,
}
