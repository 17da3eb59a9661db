//! The regression corpus: every seed file in seeds/ is replayed and must pass. A seed file is
//! added when a sweep finds a bug (`--save-failures seeds/`); once the bug is fixed it stays
//! here so the bug cannot come back unnoticed.

#![cfg(madsim)]

use minikv_sim::scenario::{self, Scenario};
use minikv_sim::seeds::{self, SeedFile};
use minikv_sim::{RunOptions, Verdict, runner};

#[test]
fn every_seed_file_replays_and_passes() {
    let dir = seeds::seeds_dir();
    assert!(dir.is_dir(), "the seed corpus directory {} is missing", dir.display());
    let files = seeds::list(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for path in &files {
        let seed_file = SeedFile::load(path).unwrap_or_else(|e| panic!("{e}"));
        let scenario_path = scenario::resolve(&seed_file.scenario, &scenario::scenarios_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let s = Scenario::load(&scenario_path).unwrap_or_else(|e| panic!("{e}"));
        let output = runner::run(&s, seed_file.seed, &RunOptions::default());
        if output.report.verdict != Verdict::Pass {
            failures.push(format!(
                "{}: {} (bug found at {}: {})\n{}\nreplay: cargo xtask replay {}",
                path.display(),
                output.report.verdict.name(),
                seed_file.commit,
                seed_file.bug,
                output.report.summary(),
                path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seed files fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
    eprintln!("replayed {} seed files from {}", files.len(), dir.display());
}
