//! `cargo xtask sim|replay|sweep`: builds `minikv-sim` for the simulator (release,
//! `--cfg madsim`, `target/madsim`) and runs its `run`, `replay` or `sweep` subcommand with the
//! user's arguments, keeping its exit code (0 pass, 1 fail/liveness/crash, 2 bad input).

use crate::cmd::run_madsim_release;
use std::process::ExitCode;

/// Runs `minikv-sim <subcommand> <args...>`.
pub fn run(subcommand: &str, args: &[String]) -> Result<ExitCode, String> {
    let args: Vec<&str> =
        std::iter::once(subcommand).chain(args.iter().map(String::as_str)).collect();
    run_madsim_release("minikv-sim", "minikv-sim", &args)
}
