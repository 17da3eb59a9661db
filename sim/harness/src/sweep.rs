//! Sweeps: many (scenario, seed) runs on a pool of host threads, one madsim runtime per thread,
//! with seed ranges, sharding across machines, JSON-lines results, replay commands and seed
//! files for every failure.
//!
//! The sweep is generic over the function that runs one seed, so its plumbing is tested in the
//! plain build with fake runners; `minikv-sim sweep` passes the real `runner::run`. Wall-clock
//! time is read here (the seeds/s figure) on host threads, never inside a simulation.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use minikv_hooks::Probe;

use crate::seeds::{SeedFile, one_line};
use crate::{OpCounts, Report, RunOutput, Scenario, Verdict};

/// Largest seed a sweep takes: seed files store seeds as TOML integers, which are signed.
pub const SEED_MAX: u64 = i64::MAX as u64;

/// Stack of each sweep thread. The simulation polls every task on its runtime's thread, and
/// deep futures want more than the 2 MiB default of spawned threads.
pub const WORKER_STACK_BYTES: usize = 64 << 20;

/// A half-open range of seeds, `A..B` (or `A..=B` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    pub fn len(self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for SeedRange {
    type Err = String;

    fn from_str(s: &str) -> Result<SeedRange, String> {
        let syntax = || format!("expected A..B (B excluded) or A..=B, got `{s}`");
        let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = s.split_once("..") {
            (a, b, false)
        } else {
            return Err(syntax());
        };
        let number = |x: &str| x.trim().parse::<u64>().map_err(|_| syntax());
        let (start, last_or_end) = (number(a)?, number(b)?);
        let end =
            if inclusive { last_or_end.checked_add(1).ok_or_else(syntax)? } else { last_or_end };
        if end <= start {
            return Err(format!("seed range `{s}` is empty"));
        }
        if end - 1 > SEED_MAX {
            return Err(format!("seeds must be at most {SEED_MAX} (TOML integers), got `{s}`"));
        }
        Ok(SeedRange { start, end })
    }
}

/// One machine's share of a sweep, `i/n`: the seeds whose position in the range is `i` mod `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let syntax = || format!("expected i/n with 0 <= i < n, got `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index = i.trim().parse::<u64>().map_err(|_| syntax())?;
        let count = n.trim().parse::<u64>().map_err(|_| syntax())?;
        if index >= count {
            return Err(syntax());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The seeds of `range` this shard runs, in order.
    pub fn seeds(self, range: SeedRange) -> Vec<u64> {
        (range.start..range.end).filter(|s| (s - range.start) % self.count == self.index).collect()
    }
}

/// One run of a sweep.
#[derive(Debug, Clone, Copy)]
pub struct SweepRun<'a> {
    /// How the user named the scenario (a name or a path): what the replay command repeats.
    pub scenario_arg: &'a str,
    pub scenario: &'a Scenario,
    pub seed: u64,
}

/// Every (scenario, seed) pair, seed-major, so a sweep stopped early has covered every scenario
/// equally.
pub fn plan<'a>(scenarios: &'a [(String, Scenario)], seeds: &[u64]) -> Vec<SweepRun<'a>> {
    let mut runs = Vec::with_capacity(scenarios.len() * seeds.len());
    for &seed in seeds {
        for (arg, scenario) in scenarios {
            runs.push(SweepRun { scenario_arg: arg, scenario, seed });
        }
    }
    runs
}

/// What a sweep needs besides its runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Threads (each with its own madsim runtime per run).
    pub jobs: usize,
    /// Also write the JSON lines here, sorted by (scenario, seed) once the sweep ends.
    pub out: Option<PathBuf>,
    /// Write a seed file here for every run that does not pass.
    pub save_failures: Option<PathBuf>,
    /// The commit seed files name.
    pub commit: String,
    /// Re-run every seed divisible by this (0: none), and every seed that does not pass, and
    /// compare the two runs: a difference makes the verdict `nondeterministic`.
    pub recheck_every: u64,
}

impl SweepOptions {
    /// Whether the sweep runs `seed` again after a first run ending in `verdict`.
    pub fn rechecks(&self, seed: u64, verdict: Verdict) -> bool {
        verdict != Verdict::Pass
            || (self.recheck_every > 0 && seed.is_multiple_of(self.recheck_every))
    }
}

/// Verdict counts and speed of a sweep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSummary {
    pub runs: u64,
    pub pass: u64,
    pub fail: u64,
    pub liveness: u64,
    pub crash: u64,
    pub nondeterministic: u64,
    /// Runs that were run twice and compared.
    pub rechecked: u64,
    pub wall_secs: f64,
    /// Each code probe hit: total hits and the runs that hit it.
    pub probes: BTreeMap<String, (u64, u64)>,
    /// Each BUGGIFY point: total firings and the runs that enabled it.
    pub buggify: BTreeMap<String, (u64, u64)>,
}

impl SweepSummary {
    fn count(&mut self, report: &Report) {
        for (name, hits) in &report.probes {
            let e = self.probes.entry(name.clone()).or_default();
            *e = (e.0 + hits, e.1 + 1);
        }
        for (name, fired) in &report.buggify {
            let e = self.buggify.entry(name.clone()).or_default();
            *e = (e.0 + fired, e.1 + 1);
        }
        self.runs += 1;
        match report.verdict {
            Verdict::Pass => self.pass += 1,
            Verdict::Fail => self.fail += 1,
            Verdict::Liveness => self.liveness += 1,
            Verdict::Crash => self.crash += 1,
            Verdict::Nondeterministic => self.nondeterministic += 1,
        }
    }

    pub fn all_pass(&self) -> bool {
        self.pass == self.runs
    }

    /// What the sweep reached: every probe with its hits and runs, the probes that never
    /// fired (the rare paths this sweep did not test), and how often each BUGGIFY point fired.
    pub fn coverage(&self) -> String {
        let hit: Vec<String> = self
            .probes
            .iter()
            .map(|(name, (hits, runs))| format!("{name} {hits} in {runs} runs"))
            .collect();
        let never: Vec<&str> = Probe::ALL
            .iter()
            .map(|p| p.name())
            .filter(|name| !self.probes.contains_key(*name))
            .collect();
        let fired: Vec<String> = self
            .buggify
            .iter()
            .map(|(name, (fired, runs))| format!("{name} {fired} in {runs} runs"))
            .collect();
        let none = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let never = if never.is_empty() { "none".to_string() } else { never.join(", ") };
        format!(
            "probes hit: {}\nprobes never hit: {never}\nbuggify fired: {}",
            none(&hit),
            none(&fired)
        )
    }

    /// The sweep's last line.
    pub fn line(&self) -> String {
        let rate = self.runs as f64 / self.wall_secs.max(1e-9);
        format!(
            "sweep: {} runs, {} pass, {} fail, {} liveness, {} crash, {} nondeterministic \
             ({} rechecked), {rate:.1} seeds/s wall",
            self.runs,
            self.pass,
            self.fail,
            self.liveness,
            self.crash,
            self.nondeterministic,
            self.rechecked
        )
    }
}

/// The command that replays one run.
pub fn replay_command(scenario_arg: &str, seed: u64) -> String {
    format!("cargo xtask sim --scenario {scenario_arg} --seed {seed}")
}

/// The report of a run whose runner panicked (the runner catches the simulation's panics; this
/// catches the rest).
pub fn crash_report(scenario: &Scenario, seed: u64, message: &str, wall_ms: u64) -> Report {
    Report {
        scenario: scenario.name.clone(),
        seed,
        verdict: Verdict::Crash,
        sim_ms: 0,
        wall_ms,
        ops: OpCounts::default(),
        faults: Default::default(),
        checks: Default::default(),
        trace_hash: String::new(),
        swarm: Default::default(),
        message: Some(format!("runner panicked: {message}")),
        canaries: Vec::new(),
        buggify: Default::default(),
        probes: Default::default(),
        pd: Default::default(),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// Runs one seed; a panic becomes a `crash` report (with no history and no trace) instead of
/// unwinding into the caller.
pub fn run_guarded_output<F>(run: &F, scenario: &Scenario, seed: u64) -> RunOutput
where
    F: Fn(&Scenario, u64) -> RunOutput + ?Sized,
{
    let started = Instant::now();
    match catch_unwind(AssertUnwindSafe(|| run(scenario, seed))) {
        Ok(output) => output,
        Err(payload) => {
            let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let message = panic_message(payload.as_ref());
            let report = crash_report(scenario, seed, &message, wall_ms);
            RunOutput { report, history: String::new(), trace: String::new() }
        }
    }
}

/// [`run_guarded_output`], keeping only the report.
pub fn run_guarded<F>(run: &F, scenario: &Scenario, seed: u64) -> Report
where
    F: Fn(&Scenario, u64) -> RunOutput + ?Sized,
{
    run_guarded_output(run, scenario, seed).report
}

/// Runs every run of `runs` on `options.jobs` threads that take runs from a shared index.
/// Writes one report JSON line per run to `out` (or to `options.out`), and for each run that
/// does not pass, its replay command (and saved seed file) to `err`. Returns the counts; `Err`
/// only when an output file cannot be written (the message names it).
pub fn sweep<F>(
    runs: &[SweepRun<'_>],
    options: &SweepOptions,
    run: &F,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<SweepSummary, String>
where
    F: Fn(&Scenario, u64) -> RunOutput + Sync + ?Sized,
{
    assert!(options.jobs > 0, "a sweep needs at least one job");
    let mut out_file = match &options.out {
        Some(path) => Some(create(path)?),
        None => None,
    };
    if let Some(dir) = &options.save_failures {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    let bar = progress_bar(runs.len() as u64);
    let started = Instant::now();
    let mut summary = SweepSummary::default();
    let mut lines: Vec<(String, u64, String)> = Vec::with_capacity(runs.len());
    let next = AtomicUsize::new(0);
    let threads = options.jobs.min(runs.len()).max(1);
    let result = std::thread::scope(|scope| -> Result<(), String> {
        let (tx, rx) = mpsc::channel::<(usize, Report, bool)>();
        for worker in 0..threads {
            let (tx, next) = (tx.clone(), &next);
            std::thread::Builder::new()
                .name(format!("sweep-{worker}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(r) = runs.get(i) else { break };
                        let (report, rechecked) = run_rechecked(run, r, options);
                        if tx.send((i, report, rechecked)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| format!("cannot start sweep thread: {e}"))?;
        }
        drop(tx);
        for (i, report, rechecked) in rx {
            summary.count(&report);
            summary.rechecked += u64::from(rechecked);
            let json = report.to_json();
            bar.suspend(|| -> Result<(), String> {
                match &mut out_file {
                    Some(file) => writeln!(file, "{json}").map_err(|e| write_error(options, e)),
                    None => writeln!(out, "{json}").map_err(|e| format!("stdout: {e}")),
                }?;
                if report.verdict != Verdict::Pass {
                    note_failure(&runs[i], &report, options, err)?;
                }
                Ok(())
            })?;
            lines.push((report.scenario.clone(), report.seed, json));
            bar.inc(1);
            bar.set_message(format!(
                "{} pass, {} fail, {} liveness, {} crash, {} nondeterministic",
                summary.pass,
                summary.fail,
                summary.liveness,
                summary.crash,
                summary.nondeterministic
            ));
        }
        Ok(())
    });
    // On an output error the remaining runs are abandoned: the workers stop at their next send.
    result?;
    bar.finish_and_clear();
    summary.wall_secs = started.elapsed().as_secs_f64();
    if let Some(path) = &options.out {
        lines.sort();
        let mut file = create(path)?;
        for (_, _, json) in &lines {
            writeln!(file, "{json}")
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    Ok(summary)
}

/// Runs one seed and, when the options say so, runs it again and compares the two runs; returns
/// the report (verdict `nondeterministic` if they differ) and whether it ran twice.
fn run_rechecked<F>(run: &F, r: &SweepRun<'_>, options: &SweepOptions) -> (Report, bool)
where
    F: Fn(&Scenario, u64) -> RunOutput + ?Sized,
{
    let first = run_guarded_output(run, r.scenario, r.seed);
    if !options.rechecks(r.seed, first.report.verdict) {
        return (first.report, false);
    }
    let second = run_guarded_output(run, r.scenario, r.seed);
    let diff = crate::determinism::compare(&first, &second);
    let mut report = first.report;
    if let Some(diff) = diff {
        let was = report.verdict.name();
        report.verdict = Verdict::Nondeterministic;
        report.message = Some(format!("{diff}\n  (the first run's verdict: {was})"));
    }
    (report, true)
}

fn note_failure(
    run: &SweepRun<'_>,
    report: &Report,
    options: &SweepOptions,
    err: &mut dyn Write,
) -> Result<(), String> {
    let why = report.message.as_deref().unwrap_or("(no message)");
    let stderr = |e: std::io::Error| format!("stderr: {e}");
    writeln!(
        err,
        "{} seed {}: {}: {}\n  replay: {}",
        report.scenario,
        report.seed,
        report.verdict.name(),
        one_line(why),
        replay_command(run.scenario_arg, run.seed)
            + &run
                .scenario
                .cluster
                .canary
                .map_or(String::new(), |c| format!(" --canary {}", c.0.name()))
    )
    .map_err(stderr)?;
    let Some(dir) = &options.save_failures else { return Ok(()) };
    let seed_file = SeedFile {
        scenario: run.scenario_arg.to_string(),
        seed: run.seed,
        commit: options.commit.clone(),
        bug: one_line(&format!("{}: {why}", report.verdict.name())),
    };
    let path = dir.join(seed_file.file_name());
    if path.exists() {
        // A seed already in the corpus keeps the commit and words it was saved with.
        writeln!(err, "  seed file {} already exists; left as it is", path.display())
            .map_err(stderr)?;
        return Ok(());
    }
    std::fs::write(&path, seed_file.to_toml())
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    writeln!(err, "  saved {}: cargo xtask replay {}", path.display(), path.display())
        .map_err(stderr)
}

fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

fn write_error(options: &SweepOptions, e: std::io::Error) -> String {
    let path = options.out.as_deref().map_or_else(|| "stdout".into(), |p| p.display().to_string());
    format!("{path}: cannot write: {e}")
}

/// A bar on stderr (hidden when stderr is not a terminal) with the verdict counts as message.
fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} seeds, {per_sec}, eta {eta} | {msg}",
    )
    .expect("the progress template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
pub(crate) mod tests;
