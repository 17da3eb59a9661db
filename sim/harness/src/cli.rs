//! The `minikv-sim` command line: `run`, `replay`, `sweep` and `bench`, parsed with clap and
//! executed against any function that runs one seed, so the whole command line is tested in
//! the plain build with fake runners; the binary passes `runner::run` (madsim build only).
//!
//! Exit codes: 0 pass, 1 fail/liveness/crash (or a non-deterministic run), 2 bad input.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use minikv_hooks::Canary;

use crate::bench::{BENCH_SEEDS_DEFAULT, bench_scenario, last_line};
use crate::canaries;
use crate::scenario::parse_canary;
use crate::seeds::SeedFile;
use crate::sweep::{SeedRange, Shard, SweepOptions, plan, run_guarded_output, sweep as run_sweep};
use crate::{Report, RunOptions, RunOutput, Scenario, TraceLevel, scenario};

/// Exit code of a passing run.
pub const EXIT_PASS: u8 = 0;
/// Exit code of a run that failed a check, missed liveness, crashed, or was not deterministic.
pub const EXIT_FAIL: u8 = 1;
/// Exit code of bad input: flags, scenario or seed files, unwritable output files.
pub const EXIT_BAD_INPUT: u8 = 2;

/// What runs one seed: `runner::run` in the binary, a fake in tests.
pub type RunFn<'a> = &'a (dyn Fn(&Scenario, u64, &RunOptions) -> RunOutput + Sync);

/// minikv-sim: deterministic simulation runs of minikv, by scenario and seed.
#[derive(Debug, Parser)]
#[command(name = "minikv-sim", version)]
pub struct Cli {
    /// Where scenario names are looked up (default: the repository's scenarios/).
    #[arg(long, global = true, value_name = "DIR")]
    pub scenarios_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scenario with one seed and print its report.
    Run(RunArgs),
    /// Re-run a seed file (seeds/*.toml) with full tracing.
    Replay(ReplayArgs),
    /// Run many seeds in parallel; one report JSON line per run.
    Sweep(SweepArgs),
    /// Simulated/wall ratio and seeds per core-hour of every standard scenario.
    Bench(BenchArgs),
    /// The canary suite: the standard sweep with each planted bug on; the detection rate.
    Canaries(CanariesArgs),
}

#[derive(Debug, Args)]
pub struct CanariesArgs {
    /// Seeds per scenario (0..N) each canary may take to be caught.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// Hold each canary to its budget in sim/harness/canaries.toml instead of --seeds (what
    /// CI runs). Either way the scenario and seed that caught it must pass without it.
    #[arg(long, conflicts_with = "seeds")]
    pub budgets: bool,
    /// Only this canary (repeatable).
    #[arg(long, value_name = "NAME", value_parser = parse_canary)]
    pub canary: Vec<Canary>,
    /// Threads, each hunting one canary at a time (default: available parallelism).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// List the canaries and what each plants, and exit.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario name (scenarios/NAME.toml) or a path to a scenario file.
    #[arg(long, value_name = "NAME|PATH")]
    pub scenario: String,
    #[arg(long)]
    pub seed: u64,
    /// Print the report as JSON on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the history (JSON lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Write the trace (one event per line) to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// `info` (what trace_hash covers) or `debug` (adds client ops and Raft audit events).
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_trace_level)]
    pub trace_level: TraceLevel,
    /// Run twice with debug tracing; print the first differing trace line; exit 1 if any.
    #[arg(long)]
    pub check_determinism: bool,
    /// Switch on a planted bug (`minikv-sim canaries --list` names them).
    #[arg(long, value_name = "NAME", value_parser = parse_canary)]
    pub canary: Option<Canary>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The seed file.
    #[arg(value_name = "FILE.toml")]
    pub file: PathBuf,
    /// Print the report as JSON on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Where the trace and history go (default: target/replay in the repository).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// A scenario name or path, or `all` for every file in the scenarios directory.
    #[arg(long, value_name = "NAME|PATH|all")]
    pub scenario: String,
    /// Seeds A..B (B excluded) or A..=B.
    #[arg(long, value_name = "A..B")]
    pub seeds: SeedRange,
    /// Threads, each running one seed at a time (default: available parallelism).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// Run only the seeds whose position in the range is i mod n (split a sweep over n machines).
    #[arg(long, value_name = "i/n", default_value = "0/1")]
    pub shard: Shard,
    /// Write the JSON lines to FILE (sorted by scenario and seed at the end) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write a seed file into DIR for every run that does not pass.
    #[arg(long, value_name = "DIR")]
    pub save_failures: Option<PathBuf>,
    /// Run every seed divisible by N (and every seed that does not pass) twice and compare the
    /// runs; a difference is the verdict `nondeterministic`. 0: only the failing seeds.
    #[arg(long, value_name = "N", default_value_t = RECHECK_EVERY_DEFAULT)]
    pub recheck_every: u64,
    /// Switch on a planted bug in every run.
    #[arg(long, value_name = "NAME", value_parser = parse_canary)]
    pub canary: Option<Canary>,
}

/// A sweep re-runs one seed in this many (2% more runs) to check determinism.
pub const RECHECK_EVERY_DEFAULT: u64 = 50;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seeds per scenario (0..N), run one after another on one thread.
    #[arg(long, value_name = "N", default_value_t = BENCH_SEEDS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
}

fn parse_trace_level(s: &str) -> Result<TraceLevel, String> {
    match s {
        "info" => Ok(TraceLevel::Info),
        "debug" => Ok(TraceLevel::Debug),
        _ => Err(format!("expected info or debug, got `{s}`")),
    }
}

/// A command's result: its exit code, or a bad-input message (exit 2).
type Outcome = Result<u8, String>;

/// Parses `args` (the program name first) and runs the command; returns the exit code.
pub fn main_with<I, T>(args: I, run: RunFn<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = if e.use_stderr() {
                write!(err, "{}", e.render())
            } else {
                write!(out, "{}", e.render())
            };
            return u8::try_from(e.exit_code()).unwrap_or(EXIT_BAD_INPUT);
        }
    };
    let dir = cli.scenarios_dir.clone().unwrap_or_else(|| workspace_dir().join("scenarios"));
    let outcome = match &cli.command {
        Command::Run(a) => run_cmd(a, &dir, run, out),
        Command::Replay(a) => replay_cmd(a, &dir, run, out),
        Command::Sweep(a) => sweep_cmd(a, &dir, run, out, err),
        Command::Bench(a) => bench_cmd(a, &dir, run, out),
        Command::Canaries(a) => canaries_cmd(a, &dir, run, out, err),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "minikv-sim: {message}");
            EXIT_BAD_INPUT
        }
    }
}

fn run_cmd(a: &RunArgs, dir: &Path, run: RunFn<'_>, out: &mut dyn Write) -> Outcome {
    let scenario = load_scenario(&a.scenario, dir)?.with_canary(a.canary);
    // Open the output files first: a bad path is reported before a long run, not after.
    let history = a.history.as_deref().map(create).transpose()?;
    let trace = a.trace.as_deref().map(create).transpose()?;
    let (output, diff) = if a.check_determinism {
        let (output, diff) = check_determinism(&scenario, a.seed, run);
        let same = || {
            let lines = output.trace.lines().count();
            format!("deterministic: two runs, {lines} identical debug trace lines, same history")
        };
        say(out, &diff.clone().unwrap_or_else(same))?;
        (output, diff)
    } else {
        let options = RunOptions { trace_level: a.trace_level };
        let once = |s: &Scenario, seed| run(s, seed, &options);
        (run_guarded_output(&once, &scenario, a.seed), None)
    };
    if let (Some(file), Some(path)) = (history, &a.history) {
        write_to(file, path, &output.history)?;
    }
    if let (Some(file), Some(path)) = (trace, &a.trace) {
        write_to(file, path, &output.trace)?;
    }
    print_report(&output.report, a.json, out)?;
    if diff.is_some() {
        return Ok(EXIT_FAIL);
    }
    Ok(output.report.verdict.exit_code())
}

/// Runs `seed` twice with debug tracing; returns the first run and, if the runs differ, a
/// description of the first difference (trace first, then history, then trace hash).
pub fn check_determinism(
    scenario: &Scenario,
    seed: u64,
    run: RunFn<'_>,
) -> (RunOutput, Option<String>) {
    let options = RunOptions { trace_level: TraceLevel::Debug };
    let once = |s: &Scenario, seed| run(s, seed, &options);
    let first = run_guarded_output(&once, scenario, seed);
    let second = run_guarded_output(&once, scenario, seed);
    let diff = crate::determinism::compare(&first, &second);
    (first, diff)
}

pub use crate::determinism::first_difference;

fn replay_cmd(a: &ReplayArgs, dir: &Path, run: RunFn<'_>, out: &mut dyn Write) -> Outcome {
    let seed_file = SeedFile::load(&a.file).map_err(|e| e.to_string())?;
    let scenario = load_scenario(&seed_file.scenario, dir)
        .map_err(|e| format!("{} names a scenario that does not load: {e}", a.file.display()))?;
    let out_dir = a.out_dir.clone().unwrap_or_else(|| workspace_dir().join("target/replay"));
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("{}: cannot create: {e}", out_dir.display()))?;
    let stem = a.file.file_stem().map_or_else(|| "seed".into(), |s| s.to_string_lossy());
    let trace_path = out_dir.join(format!("{stem}.trace"));
    let history_path = out_dir.join(format!("{stem}.history.jsonl"));
    let (trace, history) = (create(&trace_path)?, create(&history_path)?);
    say(
        out,
        &format!(
            "replay {}: {} seed {} (found at {}: {})",
            a.file.display(),
            seed_file.scenario,
            seed_file.seed,
            seed_file.commit,
            seed_file.bug
        ),
    )?;
    let options = RunOptions { trace_level: TraceLevel::Debug };
    let once = |s: &Scenario, seed| run(s, seed, &options);
    let output = run_guarded_output(&once, &scenario, seed_file.seed);
    write_to(trace, &trace_path, &output.trace)?;
    write_to(history, &history_path, &output.history)?;
    say(out, &format!("trace: {}\nhistory: {}", trace_path.display(), history_path.display()))?;
    print_report(&output.report, a.json, out)?;
    Ok(output.report.verdict.exit_code())
}

fn sweep_cmd(
    a: &SweepArgs,
    dir: &Path,
    run: RunFn<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    let names = if a.scenario == "all" {
        let names = scenario::list(dir).map_err(|e| e.to_string())?;
        if names.is_empty() {
            return Err(format!("--scenario all: no scenario files in {}", dir.display()));
        }
        names
    } else {
        vec![a.scenario.clone()]
    };
    let scenarios = names
        .into_iter()
        .map(|name| load_scenario(&name, dir).map(|s| (name, s.with_canary(a.canary))))
        .collect::<Result<Vec<_>, _>>()?;
    let seeds = a.shard.seeds(a.seeds);
    let runs = plan(&scenarios, &seeds);
    let jobs = a.jobs.map_or_else(available_parallelism, |j| usize::try_from(j).unwrap_or(1));
    let options = SweepOptions {
        jobs,
        out: a.out.clone(),
        save_failures: a.save_failures.clone(),
        commit: git_commit(),
        recheck_every: a.recheck_every,
    };
    say(
        err,
        &format!(
            "sweep: {} scenario(s) x {} seed(s) (seeds {}, shard {}/{}) = {} runs on {jobs} threads",
            scenarios.len(),
            seeds.len(),
            a.seeds,
            a.shard.index,
            a.shard.count,
            runs.len()
        ),
    )?;
    let options_info = RunOptions::default();
    let once = |s: &Scenario, seed| run(s, seed, &options_info);
    let summary = run_sweep(&runs, &options, &once, out, err)?;
    say(err, &summary.coverage())?;
    say(err, &summary.line())?;
    Ok(if summary.all_pass() { EXIT_PASS } else { EXIT_FAIL })
}

fn canaries_cmd(
    a: &CanariesArgs,
    dir: &Path,
    run: RunFn<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    if a.list {
        for c in Canary::ALL {
            say(out, &format!("{}: {}", c.name(), c.doc().trim()))?;
        }
        return Ok(EXIT_PASS);
    }
    let budgets =
        if a.budgets { Some(canaries::Budgets::load(&canaries::budgets_path())?) } else { None };
    let names = scenario::list(dir).map_err(|e| e.to_string())?;
    if names.is_empty() {
        return Err(format!("canaries: no scenario files in {}", dir.display()));
    }
    let scenarios = names
        .into_iter()
        .map(|name| load_scenario(&name, dir).map(|s| (name, s)))
        .collect::<Result<Vec<_>, _>>()?;
    let chosen: Vec<Canary> =
        if a.canary.is_empty() { Canary::ALL.to_vec() } else { a.canary.clone() };
    let seeds_of = |c: Canary| budgets.as_ref().map_or(a.seeds, |b| b.0[&c]);
    let jobs = a.jobs.map_or_else(available_parallelism, |j| usize::try_from(j).unwrap_or(1));
    say(
        err,
        &format!(
            "canaries: {} canaries x {} scenarios, {} on {jobs} threads",
            chosen.len(),
            scenarios.len(),
            if a.budgets {
                "each within its budget".to_string()
            } else {
                format!("seeds 0..{}", a.seeds)
            }
        ),
    )?;
    let options = RunOptions::default();
    let once = |s: &Scenario, seed| run(s, seed, &options);
    // Progress as each hunt ends (stderr is shared by the hunting threads).
    let on_done = |h: &canaries::Hunt| eprintln!("{}", h.line());
    let hunts = canaries::hunt_all(&chosen, &scenarios, &seeds_of, true, jobs, &once, &on_done);
    for h in &hunts {
        say(out, &h.line())?;
    }
    let seeds = if a.budgets { "their budgeted".to_string() } else { a.seeds.to_string() };
    say(out, &canaries::rate_line(&hunts, &seeds))?;
    Ok(if hunts.iter().all(canaries::Hunt::ok) { EXIT_PASS } else { EXIT_FAIL })
}

fn bench_cmd(a: &BenchArgs, dir: &Path, run: RunFn<'_>, out: &mut dyn Write) -> Outcome {
    let names = scenario::list(dir).map_err(|e| e.to_string())?;
    if names.is_empty() {
        return Err(format!("bench: no scenario files in {}", dir.display()));
    }
    let options = RunOptions::default();
    let once = |s: &Scenario, seed| run(s, seed, &options);
    let mut lines = Vec::with_capacity(names.len());
    for name in &names {
        let scenario = load_scenario(name, dir)?;
        let line = bench_scenario(&scenario, a.seeds, &once);
        say(out, &line.line())?;
        lines.push(line);
    }
    say(out, &last_line(&lines))?;
    Ok(EXIT_PASS)
}

fn load_scenario(name_or_path: &str, dir: &Path) -> Result<Scenario, String> {
    let path = scenario::resolve(name_or_path, dir).map_err(|e| e.to_string())?;
    Scenario::load(&path).map_err(|e| e.to_string())
}

fn print_report(report: &Report, json: bool, out: &mut dyn Write) -> Result<(), String> {
    say(out, &report.summary())?;
    if json {
        say(out, &report.to_json())?;
    }
    Ok(())
}

fn say(to: &mut dyn Write, text: &str) -> Result<(), String> {
    writeln!(to, "{text}").and_then(|()| to.flush()).map_err(|e| format!("cannot print: {e}"))
}

fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

fn write_to(mut file: File, path: &Path, text: &str) -> Result<(), String> {
    file.write_all(text.as_bytes()).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// The repository root (this crate sits at sim/harness).
pub fn workspace_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

fn available_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `git rev-parse --short HEAD` in the repository, or "unknown".
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_dir())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty() && !c.contains(char::is_whitespace))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
