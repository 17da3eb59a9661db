//! The canary suite: for each planted bug, the standard sweep (every scenario, seed-major) with
//! the bug switched on, stopped at the first run that does not pass; the detection rate, the
//! seeds to first detection and the check that caught it; a control run of the same scenario
//! and seed without the bug; and the budgets CI holds each canary to (`canaries.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use minikv_hooks::Canary;
use serde::Deserialize;

use crate::scenario::parse_canary;
use crate::sweep::WORKER_STACK_BYTES;
use crate::{Report, RunOutput, Scenario, Verdict};

/// How many seeds per scenario each canary must be caught within (CI's short version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets(pub BTreeMap<Canary, u64>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetsFile {
    budget_seeds: BTreeMap<String, u64>,
}

/// The budgets file beside this crate.
pub fn budgets_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("canaries.toml")
}

impl Budgets {
    pub fn load(path: &Path) -> Result<Budgets, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Budgets::parse(&text, &path.display().to_string())
    }

    /// Parses the budgets; every canary must have one, and each name must be a canary.
    pub fn parse(text: &str, path: &str) -> Result<Budgets, String> {
        let file: BudgetsFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| text[..s.start].lines().count().max(1));
            format!("{path}:{line}: {}", e.message().trim())
        })?;
        let mut budgets = BTreeMap::new();
        for (name, seeds) in file.budget_seeds {
            let canary = parse_canary(&name).map_err(|e| format!("{path}: budget_seeds: {e}"))?;
            if seeds == 0 {
                return Err(format!("{path}: budget_seeds.{name} must be at least 1"));
            }
            budgets.insert(canary, seeds);
        }
        if let Some(missing) = Canary::ALL.iter().find(|c| !budgets.contains_key(c)) {
            return Err(format!("{path}: budget_seeds: no budget for canary `{}`", missing.name()));
        }
        Ok(Budgets(budgets))
    }
}

/// The first run that caught a canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catch {
    pub scenario: String,
    pub seed: u64,
    /// The check that failed (`crash`, `liveness` or a check's name).
    pub check: String,
    pub message: String,
    /// The verdict of the same scenario and seed without the canary.
    pub control: Option<Verdict>,
}

/// One canary's hunt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunt {
    pub canary: Canary,
    /// Seeds per scenario the hunt was allowed.
    pub seeds: u64,
    /// Runs made with the canary on.
    pub runs: u64,
    pub caught: Option<Catch>,
}

impl Hunt {
    /// Caught, and the control run (if made) passed.
    pub fn ok(&self) -> bool {
        self.caught.as_ref().is_some_and(|c| c.control.is_none_or(|v| v == Verdict::Pass))
    }

    pub fn line(&self) -> String {
        let name = self.canary.name();
        match &self.caught {
            None => format!("{name}: NOT caught in {} seeds ({} runs)", self.seeds, self.runs),
            Some(c) => {
                let control = match c.control {
                    None => String::new(),
                    Some(Verdict::Pass) => "; without it: pass".to_string(),
                    Some(v) => format!("; without it: {} (the store fails on its own)", v.name()),
                };
                format!(
                    "{name}: caught by {} at {} seed {} ({} seeds, {} runs){control}\n  {}\n  replay: cargo xtask sim --scenario {} --seed {} --canary {name}",
                    c.check,
                    c.scenario,
                    c.seed,
                    c.seed + 1,
                    self.runs,
                    one_line(&c.message),
                    c.scenario,
                    c.seed
                )
            }
        }
    }
}

fn one_line(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 300 { s.chars().take(300).collect::<String>() + "..." } else { s }
}

/// The check that made `report` not pass.
pub fn caught_by(report: &Report) -> String {
    match report.verdict {
        Verdict::Crash => "crash".to_string(),
        Verdict::Nondeterministic => "determinism".to_string(),
        _ => {
            let failed = |liveness: bool| {
                report
                    .checks
                    .iter()
                    .find(|(name, c)| !c.valid && (name.as_str() == "liveness") == liveness)
                    .map(|(name, _)| name.clone())
            };
            failed(false).or_else(|| failed(true)).unwrap_or_else(|| report.verdict.name().into())
        }
    }
}

/// Hunts `canary` over `scenarios`, seed-major, for seeds `0..seeds`; stops at the first run
/// that does not pass and, with `control`, runs that scenario and seed again without the canary.
pub fn hunt<F>(
    canary: Canary,
    scenarios: &[(String, Scenario)],
    seeds: u64,
    control: bool,
    run: &F,
) -> Hunt
where
    F: Fn(&Scenario, u64) -> RunOutput + ?Sized,
{
    let planted: Vec<(&String, Scenario, &Scenario)> =
        scenarios.iter().map(|(n, s)| (n, s.clone().with_canary(Some(canary)), s)).collect();
    let mut runs = 0;
    for seed in 0..seeds {
        for (name, with, without) in &planted {
            runs += 1;
            let report = run(with, seed).report;
            if report.verdict == Verdict::Pass {
                continue;
            }
            let control = control.then(|| run(without, seed).report.verdict);
            let caught = Catch {
                scenario: name.to_string(),
                seed,
                check: caught_by(&report),
                message: report.message.clone().unwrap_or_default(),
                control,
            };
            return Hunt { canary, seeds, runs, caught: Some(caught) };
        }
    }
    Hunt { canary, seeds, runs, caught: None }
}

/// Hunts every canary in `canaries` on `jobs` threads (each hunt on one thread, so its result
/// does not depend on the others); `seeds_of` gives each its seed budget. In `canaries` order.
pub fn hunt_all<F>(
    canaries: &[Canary],
    scenarios: &[(String, Scenario)],
    seeds_of: &(dyn Fn(Canary) -> u64 + Sync),
    control: bool,
    jobs: usize,
    run: &F,
    on_done: &(dyn Fn(&Hunt) + Sync),
) -> Vec<Hunt>
where
    F: Fn(&Scenario, u64) -> RunOutput + Sync + ?Sized,
{
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..jobs.clamp(1, canaries.len().max(1)) {
            let (next, done) = (&next, &done);
            std::thread::Builder::new()
                .name(format!("canaries-{worker}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    while let Some(&c) = canaries.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let h = hunt(c, scenarios, seeds_of(c), control, run);
                        on_done(&h);
                        done.lock().unwrap_or_else(|e| e.into_inner()).push(h);
                    }
                })
                .expect("cannot start a canary thread");
        }
    });
    let mut hunts = done.into_inner().unwrap_or_else(|e| e.into_inner());
    hunts.sort_by_key(|h| canaries.iter().position(|c| *c == h.canary));
    hunts
}

/// The detection-rate line.
pub fn rate_line(hunts: &[Hunt], seeds: &str) -> String {
    let caught = hunts.iter().filter(|h| h.caught.is_some()).count();
    format!(
        "detection rate: {caught}/{} canaries caught within {seeds} seeds per scenario ({} runs)",
        hunts.len(),
        hunts.iter().map(|h| h.runs).sum::<u64>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_name_every_canary_and_nothing_else() {
        let all: Vec<String> = Canary::ALL.iter().map(|c| format!("{} = 3", c.name())).collect();
        let text = format!("[budget_seeds]\n{}\n", all.join("\n"));
        let b = Budgets::parse(&text, "c.toml").unwrap();
        assert_eq!(b.0.len(), Canary::ALL.len());
        let e = Budgets::parse(&format!("{text}nope = 2\n"), "c.toml").unwrap_err();
        assert!(e.contains("c.toml") && e.contains("unknown canary `nope`"), "{e}");
        let e = Budgets::parse("[budget_seeds]\nearly-acks = 3\n", "c.toml").unwrap_err();
        assert!(e.contains("no budget for canary"), "{e}");
        let e = Budgets::parse("[budget_seeds]\nearly-acks = \"x\"\n", "c.toml").unwrap_err();
        assert!(e.starts_with("c.toml:2:"), "{e}");
    }

    /// A fake store: `raft-figure-8` is caught from seed 3 on, in the second scenario only;
    /// `early-acks` also fails without the canary (a store that is broken on its own).
    fn fake(s: &Scenario, seed: u64) -> RunOutput {
        let canary = s.cluster.canary.map(|c| c.0);
        let verdict = match (canary, s.name.as_str()) {
            (Some(Canary::RaftFigure8), "b") if seed >= 3 => Verdict::Fail,
            (_, "a") if seed == 1 && canary != Some(Canary::RaftFigure8) => Verdict::Fail,
            _ => Verdict::Pass,
        };
        let mut out = crate::sweep::tests::fake_output(s, seed, verdict);
        if verdict == Verdict::Fail {
            let failed = crate::CheckResult { valid: false, ms: 0, detail: None };
            out.report.checks.insert("raft-audit".to_string(), failed);
        }
        out
    }

    #[test]
    fn a_hunt_stops_at_the_first_catch_and_runs_the_control() {
        let scenarios: Vec<(String, Scenario)> =
            ["a", "b"].iter().map(|n| (n.to_string(), crate::sweep::tests::scenario(n))).collect();
        let h = hunt(Canary::RaftFigure8, &scenarios, 10, true, &fake);
        let c = h.caught.clone().unwrap();
        assert_eq!((c.scenario.as_str(), c.seed, c.check.as_str()), ("b", 3, "raft-audit"));
        assert_eq!(h.runs, 8, "seed-major: seeds 0..=2 in both scenarios, then a and b at 3");
        assert_eq!(c.control, Some(Verdict::Pass));
        assert!(h.ok());
        assert!(
            h.line()
                .contains("replay: cargo xtask sim --scenario b --seed 3 --canary raft-figure-8")
        );
        let missed = hunt(Canary::RaftFigure8, &scenarios, 3, true, &fake);
        assert_eq!((missed.caught.clone(), missed.runs), (None, 6));
        assert!(!missed.ok());
        // A "catch" the store also fails without the canary is not a detection to trust.
        let broken = hunt(Canary::EarlyAcks, &scenarios, 10, true, &fake);
        assert_eq!(broken.caught.as_ref().map(|c| c.control), Some(Some(Verdict::Fail)));
        assert!(!broken.ok());
        let all = hunt_all(
            &[Canary::EarlyAcks, Canary::RaftFigure8],
            &scenarios,
            &|_| 10,
            true,
            2,
            &fake,
            &|_| {},
        );
        assert_eq!(
            all.iter().map(|h| h.canary).collect::<Vec<_>>(),
            [Canary::EarlyAcks, Canary::RaftFigure8]
        );
        assert!(rate_line(&all, "10").starts_with("detection rate: 2/2 canaries"));
    }

    #[test]
    fn the_repository_budgets_load() {
        Budgets::load(&budgets_path()).unwrap_or_else(|e| panic!("{e}"));
    }
}
