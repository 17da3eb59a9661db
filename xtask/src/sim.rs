//! `cargo xtask sim|replay|sweep`: builds `minikv-sim` for the simulator (`--cfg madsim`,
//! `target/madsim`) and runs its `run`, `replay` or `sweep` subcommand with the user's
//! arguments, keeping its exit code (0 pass, 1 fail/liveness/crash, 2 bad input). A sweep runs
//! the `optimized` build; one run or a replay the `release` build, quicker to rebuild. Both
//! give the same trace for the same scenario and seed.

use crate::cmd::{Profile, run_madsim};
use std::process::ExitCode;

/// Runs `minikv-sim <subcommand> <args...>`.
pub fn run(subcommand: &str, args: &[String]) -> Result<ExitCode, String> {
    let profile = if subcommand == "sweep" || subcommand == "canaries" {
        Profile::Optimized
    } else {
        Profile::Release
    };
    let args: Vec<&str> =
        std::iter::once(subcommand).chain(args.iter().map(String::as_str)).collect();
    run_madsim("minikv-sim", "minikv-sim", profile, &args)
}
