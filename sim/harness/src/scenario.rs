//! Scenario files: the TOML schema (cluster, phases, workloads, faults, checks), loading with
//! errors that name the file, line and key, and resolving `--scenario NAME|PATH`.
//!
//! A parameter left out of a fault table is picked by the seed (swarm testing); the report
//! lists every pick. Unknown keys are errors, never ignored.

use std::ops::Range;
use std::path::{Path, PathBuf};

use minikv_hooks::Canary;
use serde::Deserialize;
use toml::Spanned;

mod faults;
mod validate;

pub use faults::{
    ClockSpec, ClogSpec, DeposeSpec, DiskSpec, FaultsSpec, KillSpec, LatencySpec, LoseSpec,
    LossSpec, MembershipSpec, MessageSpec, PartitionShape, PartitionSpec, PauseSpec, StrikeSpec,
};

/// Why a scenario could not be loaded. The message names the file, the line and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}: {message}")]
    Invalid { path: String, line: usize, message: String },
    #[error("no scenario `{name}`: no file {path} (known: {known})")]
    Unknown { name: String, path: String, known: String },
}

/// An inclusive range `[min, max]` of integers, written as a two-element array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "[u64; 2]")]
pub struct Between {
    pub min: u64,
    pub max: u64,
}

impl From<[u64; 2]> for Between {
    fn from([min, max]: [u64; 2]) -> Self {
        Between { min, max }
    }
}

impl Between {
    pub const fn new(min: u64, max: u64) -> Between {
        Between { min, max }
    }

    pub fn range(self) -> Range<u64> {
        self.min..self.max + 1
    }
}

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (defaults to the file stem).
    #[serde(default)]
    pub name: String,
    /// One paragraph: what situation this scenario tests.
    pub description: String,
    #[serde(default)]
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub check: CheckSpec,
    /// Run in order; each phase's faults heal when it ends.
    #[serde(rename = "phase")]
    pub phases: Vec<PhaseSpec>,
}

/// The cluster and its knobs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    pub stores: Spanned<u64>,
    /// Regions at bootstrap (only 1 until splits land).
    pub regions: Spanned<u64>,
    pub tick_ms: Spanned<u64>,
    pub election_ticks: Spanned<u64>,
    pub heartbeat_ticks: Spanned<u64>,
    /// One-way delay of every message, drawn per message.
    pub latency_ms: Spanned<Between>,
    /// After an idle loop wakes, a node gathers messages this long before running Readies.
    pub ready_batch_window_ms: u64,
    /// A leader compacts its log when more entries than this are kept.
    pub log_gc_count_limit: Spanned<u64>,
    /// ... or when at least this many entries can go because every peer has them.
    pub log_gc_threshold_entries: u64,
    /// A leader checks whether to compact every this many ticks.
    pub log_gc_tick_ticks: Spanned<u64>,
    pub snapshot_chunk_bytes: Spanned<u64>,
    /// Leaders serve reads from a lease (`StoreConfig::lease_read`); unsafe under clock skew
    /// beyond the margin.
    pub lease_read: bool,
    pub lease_margin_ticks: u64,
    /// Plants a bug in the store, for canary scenarios that prove the checks catch it: a
    /// name from `minikv_hooks::Canary` (`cargo xtask canaries` lists them).
    pub canary: Option<CanaryName>,
    /// BUGGIFY: the chance, in parts per million, that each BUGGIFY point in the store is
    /// enabled for a run (an enabled point then fires with its own probability). 0: off.
    pub buggify_enable_ppm: Spanned<u64>,
    /// PD nodes: a Raft group of their own, each over its own store and disk, serving the
    /// placement driver (0: none; the stores do not ask PD for anything yet).
    pub pd_nodes: Spanned<u64>,
    /// How far above its clock the PD leader saves the TSO bound.
    pub pd_tso_window_ms: Spanned<u64>,
    /// Voters PD keeps in every region.
    pub pd_max_replicas: Spanned<u64>,
    /// A store silent this long is down for PD, which replaces its replicas.
    pub pd_max_store_down_ms: Spanned<u64>,
    /// How often each store heartbeats PD.
    pub pd_heartbeat_ms: Spanned<u64>,
}

/// Default chance that a BUGGIFY point is enabled for a run (FoundationDB's is a quarter).
pub const BUGGIFY_ENABLE_PPM_DEFAULT: u64 = 250_000;

/// A canary named in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CanaryName(pub Canary);

impl TryFrom<String> for CanaryName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        parse_canary(&name).map(CanaryName)
    }
}

/// The canary named `name`, or an error that lists the known ones.
pub fn parse_canary(name: &str) -> Result<Canary, String> {
    Canary::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Canary::ALL.iter().map(|c| c.name()).collect();
        format!("unknown canary `{name}` (known: {})", known.join(", "))
    })
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            stores: Spanned::new(0..0, 5),
            regions: Spanned::new(0..0, 1),
            tick_ms: Spanned::new(0..0, 10),
            election_ticks: Spanned::new(0..0, 10),
            heartbeat_ticks: Spanned::new(0..0, 2),
            latency_ms: Spanned::new(0..0, Between::new(1, 10)),
            ready_batch_window_ms: 1,
            log_gc_count_limit: Spanned::new(0..0, 10_000),
            log_gc_threshold_entries: 50,
            log_gc_tick_ticks: Spanned::new(0..0, 10),
            snapshot_chunk_bytes: Spanned::new(0..0, 256 << 10),
            lease_read: false,
            lease_margin_ticks: 2,
            canary: None,
            buggify_enable_ppm: Spanned::new(0..0, BUGGIFY_ENABLE_PPM_DEFAULT),
            pd_nodes: Spanned::new(0..0, 0),
            pd_tso_window_ms: Spanned::new(0..0, 3_000),
            pd_max_replicas: Spanned::new(0..0, 3),
            pd_max_store_down_ms: Spanned::new(0..0, 3_000),
            pd_heartbeat_ms: Spanned::new(0..0, 100),
        }
    }
}

/// Bounds of the checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSpec {
    /// After the last phase heals, every workload must finish within this much simulated
    /// time, and the replicas must converge; else the verdict is `liveness`.
    pub liveness_ms: Spanned<u64>,
    /// Search budget of the linearizability checker per key (beyond it: `unknown`, a failure).
    pub lin_max_steps_per_key: u64,
    /// Memory the run may hold (its thread's live allocations); beyond it the run ends as
    /// this seed's `crash`, not the sweep's.
    pub memory_budget_mb: u64,
    /// Messages the simulated network may carry in the run; beyond it the run ends as a
    /// `crash` (a message storm, a livelock).
    pub message_budget: u64,
    /// When set, the `raft-log` check: no store's live Raft log (applied minus truncated
    /// index) ever held more entries than this, and some replica's log was truncated at
    /// least once. For scenarios that compact the log (`cluster.log_gc_count_limit`).
    pub raft_log_entries_max: Option<Spanned<u64>>,
}

impl Default for CheckSpec {
    fn default() -> Self {
        CheckSpec {
            liveness_ms: Spanned::new(0..0, 10_000),
            lin_max_steps_per_key: 20_000_000,
            memory_budget_mb: 2048,
            message_budget: 20_000_000,
            raft_log_entries_max: None,
        }
    }
}

/// One phase: workloads run for `duration_ms` while the faults run beside them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub name: String,
    pub duration_ms: Spanned<u64>,
    #[serde(default)]
    pub workloads: WorkloadsSpec,
    #[serde(default)]
    pub faults: FaultsSpec,
    /// Faults against the PD nodes (the same kinds, but membership, message and strike).
    #[serde(default)]
    pub pd_faults: FaultsSpec,
}

/// The workload registry: each key is a workload's name, its table the workload's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadsSpec {
    pub register: Option<RegisterSpec>,
    pub append: Option<AppendSpec>,
    pub readers: Option<ReadersSpec>,
    pub batch: Option<BatchSpec>,
    pub tso: Option<TsoSpec>,
}

/// Clients asking PD for timestamps (`count` of them per request, at most `max_count`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsoSpec {
    pub clients: Spanned<u64>,
    #[serde(default = "default_tso_max_count")]
    pub max_count: Spanned<u64>,
}

fn default_tso_max_count() -> Spanned<u64> {
    Spanned::new(0..0, 8)
}

/// Linearizable register ops (read, write, cas) on a few shared keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSpec {
    pub clients: Spanned<u64>,
    #[serde(default = "default_register_keys")]
    pub keys: Spanned<u64>,
}

fn default_register_keys() -> Spanned<u64> {
    Spanned::new(0..0, 4)
}

/// Read-only clients of the register workload's keys (set `keys` to the register's), and
/// writers that connect anew for every write.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadersSpec {
    pub clients: Spanned<u64>,
    pub fresh_writers: Option<Spanned<u64>>,
    #[serde(default = "default_register_keys")]
    pub keys: Spanned<u64>,
}

/// Per-client appends to own keys (exactly once, in order), scanned back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendSpec {
    pub clients: Spanned<u64>,
    #[serde(default = "default_append_keys")]
    pub keys: Spanned<u64>,
}

fn default_append_keys() -> Spanned<u64> {
    Spanned::new(0..0, 2)
}

/// Multi-key operations on one shared range: batch puts, batch gets, scans and deletes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    pub clients: Spanned<u64>,
    #[serde(default = "default_batch_keys")]
    pub keys: Spanned<u64>,
}

fn default_batch_keys() -> Spanned<u64> {
    Spanned::new(0..0, 6)
}

/// The directory of standard scenarios, beside this crate in the repository.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// Resolves `--scenario`: a path to a file (contains `/` or ends in `.toml`) or the name of
/// a file in `dir`.
pub fn resolve(name_or_path: &str, dir: &Path) -> Result<PathBuf, ScenarioError> {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        return Ok(PathBuf::from(name_or_path));
    }
    let path = dir.join(format!("{name_or_path}.toml"));
    if path.is_file() {
        return Ok(path);
    }
    Err(ScenarioError::Unknown {
        name: name_or_path.to_string(),
        path: path.display().to_string(),
        known: list(dir).unwrap_or_default().join(", "),
    })
}

/// Names of the scenarios in `dir`, sorted.
pub fn list(dir: &Path) -> Result<Vec<String>, ScenarioError> {
    let read = std::fs::read_dir(dir).map_err(|e| ScenarioError::Read {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut names: Vec<String> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Scenario::parse(&text, &path.display().to_string(), &stem)
    }

    /// Parses and validates scenario text; `path` only labels errors.
    pub fn parse(text: &str, path: &str, default_name: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            ScenarioError::Invalid {
                path: path.to_string(),
                line,
                message: e.message().trim().to_string(),
            }
        })?;
        if scenario.name.is_empty() {
            scenario.name = default_name.to_string();
        }
        scenario.validate().map_err(|(span, message)| ScenarioError::Invalid {
            path: path.to_string(),
            line: line_of(text, span.start),
            message,
        })?;
        Ok(scenario)
    }

    /// This scenario with `canary` switched on (when given).
    pub fn with_canary(mut self, canary: Option<Canary>) -> Scenario {
        if let Some(c) = canary {
            self.cluster.canary = Some(CanaryName(c));
        }
        self
    }

    /// Simulated milliseconds of all phases together.
    pub fn duration_ms(&self) -> u64 {
        self.phases.iter().map(|p| *p.duration_ms.get_ref()).sum()
    }
}

/// 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
description = "a test"

[[phase]]
name = "faults"
duration_ms = 1000
workloads.register = { clients = 3 }
faults.partition = {}
"#;

    #[test]
    fn minimal_scenario_takes_defaults() {
        let s = Scenario::parse(MINIMAL, "x.toml", "x").unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(*s.cluster.stores.get_ref(), 5);
        assert_eq!(s.phases.len(), 1);
        assert_eq!(*s.phases[0].workloads.register.as_ref().unwrap().keys.get_ref(), 4);
        assert_eq!(s.phases[0].faults.partition.as_ref().unwrap().every_ms, None);
        assert_eq!(s.phases[0].faults.kinds(), ["partition"]);
        assert_eq!(s.check.raft_log_entries_max, None);
        assert_eq!(s.duration_ms(), 1000);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = MINIMAL.replace("faults.partition = {}", "faults.partition = {}\nbogus = 1");
        let err = Scenario::parse(&text, "s/x.toml", "x").unwrap_err().to_string();
        assert!(err.starts_with("s/x.toml:9: "), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn unknown_fault_kind_and_workload_are_errors() {
        let text = MINIMAL.replace("faults.partition = {}", "faults.meteor = {}");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert!(err.contains("meteor"), "{err}");
        let text = MINIMAL.replace("workloads.register", "workloads.bank");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert!(err.contains("bank") && err.contains("register"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line_and_key() {
        let text = MINIMAL.replace("duration_ms = 1000", "duration_ms = 0");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert_eq!(err, "x.toml:6: phase[0] (faults).duration_ms must be in [1, 3600000], got 0");
        let text = format!("{MINIMAL}\n[cluster]\nstores = 12\n");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert_eq!(err, "x.toml:11: cluster.stores must be in [1, 9], got 12");
        let text = MINIMAL.replace("faults.partition = {}", "faults.loss = { rate = 0.9 }");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:8: phase[0] (faults).faults.loss.rate"), "{err}");
        let text = MINIMAL.replace("faults.partition = {}", "faults.kill = { down_ms = [9, 3] }");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert!(err.contains("faults.kill.down_ms must be [min, max]"), "{err}");
        let text = format!("{MINIMAL}\n[check]\nraft_log_entries_max = 0\n");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert_eq!(err, "x.toml:11: check.raft_log_entries_max must be >= 1, got 0");
        let text =
            MINIMAL.replace("faults.partition = {}", "workloads.batch = { clients = 2, keys = 1 }");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert_eq!(
            err,
            "x.toml:8: phase[0] (faults).workloads.batch.keys must be in [2, 99], got 1"
        );
        let text = format!("{MINIMAL}\n[cluster]\nregions = 4\n");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:11: cluster.regions"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let text = MINIMAL.replace("duration_ms = 1000", "duration_ms = \"long\"");
        let err = Scenario::parse(&text, "x.toml", "x").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:6: "), "{err}");
        let err = Scenario::parse("description = 3", "y.toml", "y").unwrap_err().to_string();
        assert!(err.starts_with("y.toml:1: "), "{err}");
    }

    #[test]
    fn missing_phase_is_an_error() {
        let err = Scenario::parse("description = \"d\"\nphase = []\n", "x.toml", "x").unwrap_err();
        assert!(err.to_string().contains("at least one [[phase]]"), "{err}");
    }

    #[test]
    fn pd_workloads_and_faults_need_pd_nodes_and_name_their_key() {
        let tso = MINIMAL.replace("faults.partition = {}", "workloads.tso = { clients = 2 }");
        let err = Scenario::parse(&tso, "x.toml", "x").unwrap_err().to_string();
        assert!(err.contains("workloads.tso needs cluster.pd_nodes"), "{err}");
        let with_pd = |extra: &str| {
            let text = MINIMAL.replace("[[phase]]", "[cluster]\npd_nodes = 3\n\n[[phase]]");
            Scenario::parse(&format!("{text}{extra}\n"), "x.toml", "x")
        };
        let ok = with_pd("workloads.tso = { clients = 2 }\npd_faults.kill = { leader = true }");
        let ok = ok.unwrap();
        assert_eq!(ok.phases[0].pd_faults.kinds(), ["kill"]);
        let err = with_pd("pd_faults.membership = {}").unwrap_err().to_string();
        assert!(err.contains("pd_faults.membership: not a fault PD nodes take"), "{err}");
        let err =
            with_pd("pd_faults.clock = { max_offset_ms = 99999999 }").unwrap_err().to_string();
        assert!(err.contains("pd_faults.clock.max_offset_ms must be in"), "{err}");
        let err = with_pd("faults.lose = { count = 3 }").unwrap_err().to_string();
        assert!(err.contains("faults.lose.count must be in [1, 2]"), "{err}");
        let lose = MINIMAL.replace("faults.partition = {}", "faults.lose = {}");
        let err = Scenario::parse(&lose, "x.toml", "x").unwrap_err().to_string();
        assert!(err.contains("faults.lose needs cluster.pd_nodes"), "{err}");
    }

    #[test]
    fn resolve_takes_names_and_paths() {
        let dir = scenarios_dir();
        assert_eq!(resolve("a/b.toml", &dir).unwrap(), PathBuf::from("a/b.toml"));
        let err = resolve("no-such-scenario", &dir).unwrap_err().to_string();
        assert!(err.contains("no-such-scenario"), "{err}");
    }
}
