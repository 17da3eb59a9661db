//! `minikv-sim bench`: how fast the simulation runs. For each standard scenario, a few seeds
//! one after another on one thread: simulated time over wall time, and seeds per core-hour.
//! Benchmark code: it reads the wall clock (host side, outside every simulation).

use std::time::Instant;

use crate::sweep::run_guarded;
use crate::{RunOutput, Scenario, Verdict};

/// Seeds per scenario when `--seeds` is not given.
pub const BENCH_SEEDS_DEFAULT: u64 = 3;

/// Milliseconds in an hour: seeds per core-hour is this over the mean wall ms of a seed.
const HOUR_MS: f64 = 3_600_000.0;

/// One scenario's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchLine {
    pub scenario: String,
    pub seeds: u64,
    /// Simulated milliseconds, summed over the seeds.
    pub sim_ms: u64,
    /// Wall milliseconds, summed over the seeds.
    pub wall_ms: f64,
    /// Runs whose verdict was not `pass` (their speed says little).
    pub not_pass: u64,
}

impl BenchLine {
    /// Simulated time over wall time.
    pub fn ratio(&self) -> f64 {
        self.sim_ms as f64 / self.wall_ms.max(1e-3)
    }

    /// One core running seeds back to back for an hour.
    pub fn seeds_per_core_hour(&self) -> f64 {
        let mean_wall_ms = self.wall_ms / self.seeds.max(1) as f64;
        HOUR_MS / mean_wall_ms.max(1e-3)
    }

    /// The per-scenario line.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}: {} seeds, {} simulated ms in {:.0} wall ms: {:.1}x, {:.0} seeds/core-h",
            self.scenario,
            self.seeds,
            self.sim_ms,
            self.wall_ms,
            self.ratio(),
            self.seeds_per_core_hour()
        );
        if self.not_pass > 0 {
            line.push_str(&format!(" ({} of {} runs did not pass)", self.not_pass, self.seeds));
        }
        line
    }
}

/// Runs seeds `0..seeds` of `scenario` one after another, timing each.
pub fn bench_scenario<F>(scenario: &Scenario, seeds: u64, run: &F) -> BenchLine
where
    F: Fn(&Scenario, u64) -> RunOutput + ?Sized,
{
    let mut line =
        BenchLine { scenario: scenario.name.clone(), seeds, sim_ms: 0, wall_ms: 0.0, not_pass: 0 };
    for seed in 0..seeds {
        let started = Instant::now();
        let report = run_guarded(run, scenario, seed);
        line.wall_ms += started.elapsed().as_secs_f64() * 1000.0;
        line.sim_ms += report.sim_ms;
        line.not_pass += u64::from(report.verdict != Verdict::Pass);
    }
    line
}

/// The last line: `sim: <name> <ratio>x <seeds/core-h> seeds/core-h, ...`.
pub fn last_line(lines: &[BenchLine]) -> String {
    let parts: Vec<String> = lines
        .iter()
        .map(|l| {
            format!("{} {:.1}x {:.0} seeds/core-h", l.scenario, l.ratio(), l.seeds_per_core_hour())
        })
        .collect();
    format!("sim: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::tests::{fake_output, scenario};

    #[test]
    fn figures_and_lines() {
        let a = BenchLine {
            scenario: "a".into(),
            seeds: 4,
            sim_ms: 40_000,
            wall_ms: 400.0,
            not_pass: 0,
        };
        assert_eq!(a.ratio(), 100.0);
        assert_eq!(a.seeds_per_core_hour(), 36_000.0);
        assert_eq!(
            a.line(),
            "a: 4 seeds, 40000 simulated ms in 400 wall ms: 100.0x, 36000 seeds/core-h"
        );
        let b =
            BenchLine { scenario: "b".into(), seeds: 1, sim_ms: 500, wall_ms: 2000.0, not_pass: 1 };
        assert!(b.line().ends_with("(1 of 1 runs did not pass)"), "{}", b.line());
        assert_eq!(
            last_line(&[a, b]),
            "sim: a 100.0x 36000 seeds/core-h, b 0.2x 1800 seeds/core-h"
        );
    }

    #[test]
    fn runs_every_seed_and_counts_crashes() {
        let s = scenario("bench");
        let fake = |s: &Scenario, seed: u64| {
            assert!(seed != 1, "seed 1 panics");
            fake_output(s, seed, Verdict::Pass)
        };
        let line = bench_scenario(&s, 3, &fake);
        assert_eq!(line.scenario, "bench");
        assert_eq!(line.seeds, 3);
        assert_eq!(line.sim_ms, 1000 + 1002, "seed 1 crashed and simulated nothing");
        assert_eq!(line.not_pass, 1);
        assert!(line.wall_ms >= 0.0);
    }
}
