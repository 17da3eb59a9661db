//! `cargo xtask check ...`: forwards to the release-built `minikv-check` and keeps its exit code
//! (0 valid, 1 invalid, 2 bad input, 3 unknown).

use crate::cmd::{cargo, run_passthrough};
use std::process::ExitCode;

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut command = cargo(&[
        "run",
        "--release",
        "--quiet",
        "-p",
        "minikv-checker",
        "--bin",
        "minikv-check",
        "--",
    ]);
    command.args(args);
    run_passthrough(&mut command)
}
