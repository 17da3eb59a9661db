//! Tests of the sweep plumbing with fake runners (no madsim needed).

use std::collections::BTreeSet;

use super::*;
use crate::RunOutput;

const SCENARIO: &str = r#"
description = "a test"

[[phase]]
name = "faults"
duration_ms = 1000
workloads.register = { clients = 3 }
"#;

pub(crate) fn scenario(name: &str) -> Scenario {
    Scenario::parse(SCENARIO, &format!("{name}.toml"), name).unwrap()
}

pub(crate) fn fake_output(scenario: &Scenario, seed: u64, verdict: Verdict) -> RunOutput {
    let report = Report {
        scenario: scenario.name.clone(),
        seed,
        verdict,
        sim_ms: 1000 + seed,
        wall_ms: 1,
        ops: OpCounts::default(),
        faults: Default::default(),
        checks: Default::default(),
        trace_hash: format!("{seed:016x}"),
        swarm: Default::default(),
        message: (verdict != Verdict::Pass).then(|| format!("seed {seed} broke\nsecond line")),
        canaries: Vec::new(),
        buggify: [("raft-split-append".to_string(), seed)].into(),
        // Every third seed takes the rare path, twice.
        probes: if seed.is_multiple_of(3) {
            [("store-log-compacted".to_string(), 2)].into()
        } else {
            Default::default()
        },
        pd: Default::default(),
    };
    RunOutput { report, history: String::new(), trace: format!("0 s1 seed {seed}\n") }
}

/// A directory removed when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory under the system temp dir, unique to this process and `name`.
pub(crate) fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("minikv-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn options(jobs: usize) -> SweepOptions {
    SweepOptions {
        jobs,
        out: None,
        save_failures: None,
        commit: "abc1234".into(),
        recheck_every: 0,
    }
}

#[test]
fn seed_ranges_parse_and_reject_bad_syntax() {
    assert_eq!("3..7".parse::<SeedRange>(), Ok(SeedRange { start: 3, end: 7 }));
    assert_eq!("3..=7".parse::<SeedRange>(), Ok(SeedRange { start: 3, end: 8 }));
    assert_eq!("0..1".parse::<SeedRange>().unwrap().len(), 1);
    for bad in ["7", "a..b", "3...7", "-1..4", "3..", "..3", "3..=x", ""] {
        let err = bad.parse::<SeedRange>().unwrap_err();
        assert!(err.contains("expected A..B"), "{bad}: {err}");
    }
    assert_eq!("5..5".parse::<SeedRange>().unwrap_err(), "seed range `5..5` is empty");
    assert!("9..=3".parse::<SeedRange>().unwrap_err().contains("empty"));
    let huge = format!("0..={}", u64::MAX);
    assert!(huge.parse::<SeedRange>().is_err());
    let over = format!("{SEED_MAX}..={}", SEED_MAX + 1);
    assert!(over.parse::<SeedRange>().unwrap_err().contains("at most"));
}

#[test]
fn shards_parse_and_reject_bad_syntax() {
    assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
    assert_eq!("0/1".parse::<Shard>(), Ok(Shard::default()));
    for bad in ["5/5", "1/0", "1", "a/2", "1/2/3", "-1/2"] {
        let err = bad.parse::<Shard>().unwrap_err();
        assert!(err.contains("expected i/n"), "{bad}: {err}");
    }
}

#[test]
fn shards_cover_every_seed_exactly_once() {
    for (range, count) in [("0..100", 1), ("10..=47", 3), ("5..6", 4), ("1000..1999", 7)] {
        let range: SeedRange = range.parse().unwrap();
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for index in 0..count {
            let seeds = Shard { index, count }.seeds(range);
            assert!(seeds.windows(2).all(|w| w[0] < w[1]), "shard {index}/{count} is sorted");
            total += seeds.len();
            seen.extend(seeds);
        }
        assert_eq!(total as u64, range.len(), "{range} in {count} shards: no seed twice");
        assert_eq!(seen, (range.start..range.end).collect(), "{range} in {count} shards");
    }
    let range = SeedRange { start: 10, end: 20 };
    assert_eq!(Shard { index: 1, count: 3 }.seeds(range), vec![11, 14, 17]);
}

#[test]
fn plan_is_seed_major() {
    let scenarios = vec![("a".to_string(), scenario("a")), ("b".to_string(), scenario("b"))];
    let runs = plan(&scenarios, &[4, 9]);
    let pairs: Vec<(&str, u64)> = runs.iter().map(|r| (r.scenario_arg, r.seed)).collect();
    assert_eq!(pairs, vec![("a", 4), ("b", 4), ("a", 9), ("b", 9)]);
}

#[test]
fn failures_print_replay_commands_and_save_seed_files() {
    let scenarios = vec![("partitions".to_string(), scenario("partitions"))];
    let seeds: Vec<u64> = (0..20).collect();
    let runs = plan(&scenarios, &seeds);
    let dir = temp_dir("save-failures");
    let out_path = dir.join("results.jsonl");
    let seeds_dir = dir.join("seeds");
    let opts = SweepOptions {
        out: Some(out_path.clone()),
        save_failures: Some(seeds_dir.clone()),
        ..options(3)
    };
    let fake = |s: &Scenario, seed: u64| {
        let verdict = match seed % 10 {
            3 => Verdict::Fail,
            7 => Verdict::Liveness,
            _ => Verdict::Pass,
        };
        fake_output(s, seed, verdict)
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sweep(&runs, &opts, &fake, &mut out, &mut err).unwrap();
    assert_eq!((summary.runs, summary.pass, summary.fail, summary.liveness), (20, 16, 2, 2));
    assert!(!summary.all_pass());
    assert!(summary.line().starts_with("sweep: 20 runs, 16 pass, 2 fail, 2 liveness, 0 crash, "));
    assert!(out.is_empty(), "with --out, stdout stays empty");
    let err = String::from_utf8(err).unwrap();
    for seed in [3, 7, 13, 17] {
        let cmd = format!("replay: cargo xtask sim --scenario partitions --seed {seed}\n");
        assert!(err.contains(&cmd), "{err}");
        let saved = SeedFile::load(&seeds_dir.join(format!("partitions-{seed}.toml"))).unwrap();
        assert_eq!(saved.seed, seed);
        assert_eq!(saved.scenario, "partitions");
        assert_eq!(saved.commit, "abc1234");
        assert!(saved.bug.ends_with(&format!("seed {seed} broke second line")), "{}", saved.bug);
    }
    assert_eq!(crate::seeds::list(&seeds_dir).unwrap().len(), 4);
    let text = std::fs::read_to_string(&out_path).unwrap();
    let reports: Vec<Report> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let order: Vec<u64> = reports.iter().map(|r| r.seed).collect();
    assert_eq!(order, seeds, "the final file is sorted by (scenario, seed)");

    // A second sweep leaves the seed files already in the corpus alone.
    std::fs::write(seeds_dir.join("partitions-3.toml"), "kept").unwrap();
    let mut err = Vec::new();
    sweep(&runs[3..4], &opts, &fake, &mut Vec::new(), &mut err).unwrap();
    assert!(String::from_utf8(err).unwrap().contains("already exists"));
    assert_eq!(std::fs::read_to_string(seeds_dir.join("partitions-3.toml")).unwrap(), "kept");
}

#[test]
fn a_panicking_runner_becomes_a_crash_line() {
    let scenarios = vec![("kills".to_string(), scenario("kills"))];
    let runs = plan(&scenarios, &[1, 2, 3, 4]);
    let fake = |s: &Scenario, seed: u64| {
        assert!(seed != 2, "fake runner gave up on seed {seed}");
        fake_output(s, seed, Verdict::Pass)
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sweep(&runs, &options(2), &fake, &mut out, &mut err).unwrap();
    assert_eq!((summary.runs, summary.pass, summary.crash), (4, 3, 1));
    let out = String::from_utf8(out).unwrap();
    let reports: Vec<Report> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 4, "one JSON line per run on stdout:\n{out}");
    let crash = reports.iter().find(|r| r.verdict == Verdict::Crash).unwrap();
    assert_eq!((crash.scenario.as_str(), crash.seed), ("kills", 2));
    let message = crash.message.as_deref().unwrap();
    assert_eq!(message, "runner panicked: fake runner gave up on seed 2");
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("replay: cargo xtask sim --scenario kills --seed 2"), "{err}");
}

#[test]
fn every_run_happens_once_on_many_threads() {
    let scenarios = vec![("a".to_string(), scenario("a")), ("b".to_string(), scenario("b"))];
    let seeds: Vec<u64> = (100..150).collect();
    let runs = plan(&scenarios, &seeds);
    let fake = |s: &Scenario, seed: u64| fake_output(s, seed, Verdict::Pass);
    let mut out = Vec::new();
    let summary = sweep(&runs, &options(8), &fake, &mut out, &mut Vec::new()).unwrap();
    assert!(summary.all_pass());
    let mut got: Vec<(String, u64)> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Report>(l).unwrap())
        .map(|r| (r.scenario, r.seed))
        .collect();
    got.sort();
    let mut want: Vec<(String, u64)> =
        runs.iter().map(|r| (r.scenario.name.clone(), r.seed)).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn an_unwritable_out_file_is_named() {
    let scenarios = vec![("a".to_string(), scenario("a"))];
    let runs = plan(&scenarios, &[1]);
    let opts = SweepOptions { out: Some("/nonexistent-dir/x.jsonl".into()), ..options(1) };
    let fake = |s: &Scenario, seed: u64| fake_output(s, seed, Verdict::Pass);
    let err = sweep(&runs, &opts, &fake, &mut Vec::new(), &mut Vec::new()).unwrap_err();
    assert!(err.starts_with("/nonexistent-dir/x.jsonl: cannot write"), "{err}");
}

/// A runner whose second run of each seed in `drifting` writes another trace.
fn drifting_runner(
    drifting: &'static [u64],
    verdict_of: fn(u64) -> Verdict,
) -> impl Fn(&Scenario, u64) -> RunOutput + Sync {
    let calls = std::sync::Mutex::new(std::collections::BTreeMap::<u64, u64>::new());
    move |s: &Scenario, seed: u64| {
        let call = {
            let mut calls = calls.lock().unwrap();
            let n = calls.entry(seed).or_default();
            *n += 1;
            *n
        };
        let mut output = fake_output(s, seed, verdict_of(seed));
        if call > 1 && drifting.contains(&seed) {
            output.trace = format!("0 s1 seed {seed} (a timer fired out of order)\n");
        }
        output
    }
}

#[test]
fn a_sampled_seed_that_runs_differently_again_is_nondeterministic() {
    let scenarios = vec![("a".to_string(), scenario("a"))];
    let runs = plan(&scenarios, &(0..6).collect::<Vec<u64>>());
    // Seeds 0, 2 and 4 are sampled; 3 drifts too but is not, so its drift goes unseen.
    let fake = drifting_runner(&[3, 4], |_| Verdict::Pass);
    let opts = SweepOptions { recheck_every: 2, ..options(2) };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sweep(&runs, &opts, &fake, &mut out, &mut err).unwrap();
    assert_eq!((summary.runs, summary.pass, summary.nondeterministic), (6, 5, 1));
    assert_eq!(summary.rechecked, 3);
    assert!(summary.line().contains("1 nondeterministic (3 rechecked)"), "{}", summary.line());
    let out = String::from_utf8(out).unwrap();
    let reports: Vec<Report> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let bad = reports.iter().find(|r| r.verdict == Verdict::Nondeterministic).unwrap();
    assert_eq!(bad.seed, 4);
    let message = bad.message.as_deref().unwrap();
    assert!(message.contains("trace line 1 differs"), "{message}");
    assert!(message.contains("a timer fired out of order"), "{message}");
    assert!(message.contains("the first run's verdict: pass"), "{message}");
    assert!(String::from_utf8(err).unwrap().contains("--seed 4"));
}

#[test]
fn every_failing_seed_is_run_again() {
    let scenarios = vec![("a".to_string(), scenario("a"))];
    let runs = plan(&scenarios, &[1, 2, 3]);
    let fake = drifting_runner(&[2], |seed| if seed == 1 { Verdict::Pass } else { Verdict::Fail });
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sweep(&runs, &options(1), &fake, &mut out, &mut err).unwrap();
    // recheck_every is 0: only the failing seeds 2 and 3 run twice; 2 ran differently.
    assert_eq!(summary.rechecked, 2);
    assert_eq!((summary.pass, summary.fail, summary.nondeterministic), (1, 1, 1));
}

#[test]
fn a_sweep_reports_probe_hits_and_the_probes_never_hit() {
    let scenarios = vec![("basic".to_string(), scenario("basic"))];
    let seeds: Vec<u64> = (0..7).collect();
    let runs = plan(&scenarios, &seeds);
    let run = |s: &Scenario, seed| fake_output(s, seed, Verdict::Pass);
    let options = SweepOptions {
        jobs: 2,
        out: None,
        save_failures: None,
        commit: "abc".into(),
        recheck_every: 0,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sweep(&runs, &options, &run, &mut out, &mut err).unwrap();
    // Seeds 0, 3 and 6 hit the probe twice each.
    assert_eq!(summary.probes["store-log-compacted"], (6, 3));
    assert_eq!(summary.buggify["raft-split-append"], (21, 7));
    let coverage = summary.coverage();
    assert!(coverage.contains("probes hit: store-log-compacted 6 in 3 runs"), "{coverage}");
    let never = coverage.lines().find(|l| l.starts_with("probes never hit:")).unwrap();
    assert!(never.contains("raft-log-conflict-truncated"), "{coverage}");
    assert!(!never.contains("store-log-compacted"), "{coverage}");
}
