//! Tests of the command line with fake runners: exit codes, output order, files, errors.

use std::sync::atomic::{AtomicU64, Ordering};

use clap::CommandFactory;

use super::*;
use crate::Verdict;
use crate::sweep::tests::{TempDir, fake_output, temp_dir};

const SCENARIO: &str = "description = \"d\"\n\n[[phase]]\nname = \"p\"\nduration_ms = 100\n";

/// Odd seeds fail; the trace says which level it was asked for.
fn fake(s: &Scenario, seed: u64, options: &RunOptions) -> RunOutput {
    let verdict = if seed % 2 == 1 { Verdict::Fail } else { Verdict::Pass };
    let mut output = fake_output(s, seed, verdict);
    output.trace.push_str(&format!("1 s2 level {:?}\n", options.trace_level));
    output.history =
        format!("{{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":{seed}}}\n");
    output
}

/// Runs the command line; returns (exit code, stdout, stderr).
fn cli(args: &[&str], run: RunFn<'_>) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv = std::iter::once("minikv-sim").chain(args.iter().copied());
    let code = main_with(argv, run, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// A scenarios directory with `a.toml` and `b.toml`.
fn scenarios(name: &str) -> TempDir {
    let dir = temp_dir(name);
    std::fs::write(dir.join("a.toml"), SCENARIO).unwrap();
    std::fs::write(dir.join("b.toml"), SCENARIO).unwrap();
    dir
}

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
    let (code, out, _) = cli(&["--help"], &fake);
    assert_eq!(code, 0);
    for sub in ["run", "replay", "sweep", "bench"] {
        assert!(out.contains(sub), "{out}");
    }
}

#[test]
fn run_prints_summary_then_json_last_and_exits_by_verdict() {
    let dir = scenarios("run");
    let d = dir.to_str().unwrap();
    let (code, out, err) =
        cli(&["run", "--scenarios-dir", d, "--scenario", "a", "--seed", "4", "--json"], &fake);
    assert_eq!(code, EXIT_PASS, "{err}");
    assert!(out.starts_with("a seed 4: PASS"), "{out}");
    let report: Report = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!((report.scenario.as_str(), report.seed, report.verdict), ("a", 4, Verdict::Pass));
    let (code, out, _) =
        cli(&["run", "--scenarios-dir", d, "--scenario", "b", "--seed", "5"], &fake);
    assert_eq!(code, EXIT_FAIL);
    assert!(out.contains("FAIL") && !out.contains('{'), "{out}");
    let path = dir.join("a.toml");
    let (code, _, _) = cli(&["run", "--scenario", path.to_str().unwrap(), "--seed", "2"], &fake);
    assert_eq!(code, EXIT_PASS, "a path works from any directory");
}

#[test]
fn bad_scenarios_and_flags_exit_2_naming_file_and_line() {
    let dir = scenarios("bad");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, SCENARIO.replace("duration_ms = 100", "duration_ms = 100\nbogus = 1"))
        .unwrap();
    let (code, _, err) = cli(&["run", "--scenario", bad.to_str().unwrap(), "--seed", "1"], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains(&format!("{}:6: ", bad.display())) && err.contains("bogus"), "{err}");
    let d = dir.to_str().unwrap();
    let (code, _, err) =
        cli(&["run", "--scenarios-dir", d, "--scenario", "nope", "--seed", "1"], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("no scenario `nope`") && err.contains("a, b, bad"), "{err}");
    let (code, _, err) = cli(&["run", "--scenario", "a", "--seed", "x"], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("--seed"), "{err}");
    let (code, _, err) =
        cli(&["run", "--scenario", "a", "--seed", "1", "--trace-level", "loud"], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("expected info or debug"), "{err}");
}

#[test]
fn history_and_trace_files_are_written_or_named() {
    let dir = scenarios("files");
    let d = dir.to_str().unwrap();
    let (history, trace) = (dir.join("h.jsonl"), dir.join("t.trace"));
    let args =
        ["run", "--scenarios-dir", d, "--scenario", "a", "--seed", "2", "--trace-level", "debug"];
    let mut with_files = args.to_vec();
    with_files.extend(["--history", history.to_str().unwrap(), "--trace", trace.to_str().unwrap()]);
    let (code, _, err) = cli(&with_files, &fake);
    assert_eq!(code, EXIT_PASS, "{err}");
    assert!(std::fs::read_to_string(&trace).unwrap().ends_with("level Debug\n"));
    assert!(std::fs::read_to_string(&history).unwrap().contains("\"time\":2"));

    let calls = AtomicU64::new(0);
    let counting = |s: &Scenario, seed, o: &RunOptions| {
        calls.fetch_add(1, Ordering::Relaxed);
        fake(s, seed, o)
    };
    let mut unwritable = args.to_vec();
    unwritable.extend(["--trace", "/nonexistent-dir/t.trace"]);
    let (code, _, err) = cli(&unwritable, &counting);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("/nonexistent-dir/t.trace: cannot write"), "{err}");
    assert_eq!(calls.load(Ordering::Relaxed), 0, "a bad path is refused before the run");
}

#[test]
fn check_determinism_names_the_first_differing_line() {
    let dir = scenarios("determinism");
    let d = dir.to_str().unwrap();
    let args = [
        "run",
        "--scenarios-dir",
        d,
        "--scenario",
        "a",
        "--seed",
        "2",
        "--check-determinism",
        "--json",
    ];
    let (code, out, _) = cli(&args, &fake);
    assert_eq!(code, EXIT_PASS, "{out}");
    let same = "deterministic: two runs, 2 identical debug trace lines, same history\n";
    assert!(out.starts_with(same), "{out}");
    let calls = AtomicU64::new(0);
    let drifting = |s: &Scenario, seed, o: &RunOptions| {
        let mut output = fake(s, seed, o);
        let n = calls.fetch_add(1, Ordering::Relaxed);
        output.trace.push_str(&format!("2 s3 drift {n}\n"));
        output
    };
    let (code, out, _) = cli(&args, &drifting);
    assert_eq!(code, EXIT_FAIL, "{out}");
    assert!(out.starts_with("NOT deterministic: trace line 3 differs\n  run 1: 2 s3 drift 0\n  run 2: 2 s3 drift 1\n"), "{out}");
    assert!(out.lines().last().unwrap().starts_with('{'), "the JSON stays last: {out}");
    assert_eq!(first_difference("a\nb\n", "a\n"), Some((2, "b".into(), "<end>".into())));
    assert_eq!(first_difference("a\nb", "a\nb\n"), None);
}

#[test]
fn replay_runs_a_seed_file_with_debug_tracing_and_says_where() {
    let dir = scenarios("replay");
    let d = dir.to_str().unwrap();
    let seed_file = dir.join("a-6.toml");
    let text = "scenario = \"a\"\nseed = 6\ncommit = \"303d239\"\nbug = \"lost write\"\n";
    std::fs::write(&seed_file, text).unwrap();
    let out_dir = dir.join("replay-out");
    let (sf, od) = (seed_file.to_str().unwrap(), out_dir.to_str().unwrap());
    let (code, out, err) =
        cli(&["replay", sf, "--scenarios-dir", d, "--out-dir", od, "--json"], &fake);
    assert_eq!(code, EXIT_PASS, "{err}");
    let trace = out_dir.join("a-6.trace");
    assert!(out.contains(&format!("trace: {}\n", trace.display())), "{out}");
    assert!(out.contains("found at 303d239: lost write"), "{out}");
    assert!(std::fs::read_to_string(&trace).unwrap().ends_with("level Debug\n"));
    assert!(out_dir.join("a-6.history.jsonl").is_file());
    let report: Report = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report.seed, 6);

    std::fs::write(&seed_file, format!("{text}extra = 1\n")).unwrap();
    let (code, _, err) = cli(&["replay", sf, "--scenarios-dir", d, "--out-dir", od], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains(&format!("{sf}:5: ")) && err.contains("extra"), "{err}");
    std::fs::write(&seed_file, text.replace("\"a\"", "\"zzz\"")).unwrap();
    let (code, _, err) = cli(&["replay", sf, "--scenarios-dir", d, "--out-dir", od], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("no scenario `zzz`"), "{err}");
}

#[test]
fn sweep_over_all_scenarios_and_a_shard() {
    let dir = scenarios("sweep-all");
    let d = dir.to_str().unwrap();
    let args = [
        "sweep",
        "--scenarios-dir",
        d,
        "--scenario",
        "all",
        "--seeds",
        "0..=5",
        "--shard",
        "1/2",
        "--jobs",
        "2",
    ];
    let (code, out, err) = cli(&args, &fake);
    assert_eq!(code, EXIT_FAIL, "odd seeds fail: {err}");
    let mut got: Vec<(String, u64)> = out
        .lines()
        .map(|l| serde_json::from_str::<Report>(l).unwrap())
        .map(|r| (r.scenario, r.seed))
        .collect();
    got.sort();
    let want: Vec<(String, u64)> = [("a", 1), ("a", 3), ("a", 5), ("b", 1), ("b", 3), ("b", 5)]
        .map(|(s, n)| (s.into(), n))
        .into();
    assert_eq!(got, want);
    assert!(err.contains("replay: cargo xtask sim --scenario b --seed 3"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("sweep: 6 runs, 0 pass, 6 fail, 0 liveness, 0 crash, "),
        "{err}"
    );
    let even =
        ["sweep", "--scenarios-dir", d, "--scenario", "a", "--seeds", "0..6", "--shard", "0/2"];
    assert_eq!(cli(&even, &fake).0, EXIT_PASS);
}

#[test]
fn sweep_flag_errors_name_the_flag() {
    for (flag, value, words) in [
        ("--seeds", "1-5", "expected A..B"),
        ("--seeds", "5..2", "is empty"),
        ("--shard", "2/2", "expected i/n"),
        ("--jobs", "0", "--jobs"),
    ] {
        let mut args = vec!["sweep", "--scenario", "a"];
        if flag != "--seeds" {
            args.extend(["--seeds", "0..2"]);
        }
        args.extend([flag, value]);
        let (code, _, err) = cli(&args, &fake);
        assert_eq!(code, EXIT_BAD_INPUT, "{flag} {value}");
        assert!(err.contains(flag) && err.contains(words), "{flag} {value}: {err}");
    }
}

#[test]
fn bench_prints_one_line_per_scenario_and_the_summary_last() {
    let dir = scenarios("bench");
    let (code, out, err) =
        cli(&["bench", "--scenarios-dir", dir.to_str().unwrap(), "--seeds", "2"], &fake);
    assert_eq!(code, EXIT_PASS, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("a: 2 seeds, 2001 simulated ms in "), "{out}");
    assert!(lines[1].ends_with("(1 of 2 runs did not pass)"), "{out}");
    assert!(lines[2].starts_with("sim: a ") && lines[2].contains(", b "), "{out}");
    let empty = temp_dir("bench-empty");
    let (code, _, err) = cli(&["bench", "--scenarios-dir", empty.to_str().unwrap()], &fake);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("no scenario files"), "{err}");
}
