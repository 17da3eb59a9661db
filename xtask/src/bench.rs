//! `cargo xtask bench <target>`: runs one benchmark binary of `minikv-bench` in release mode.

use crate::cmd::{cargo, run_passthrough};
use std::process::ExitCode;

/// Every benchmark target: a binary in bench/src/bin/, and what it measures.
const TARGETS: &[(&str, &str)] = &[
    ("raft", "3-node in-memory Raft, 128-byte proposals; committed entries/s vs raft-rs"),
    ("engine", "batched writes, point reads and scans on file and simulated disks vs raw redb"),
    ("checker", "linearizability and snapshot-isolation checkers on generated histories"),
];

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let list = || {
        TARGETS
            .iter()
            .map(|(name, what)| format!("  {name:<8} {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Some((target, rest)) = args.split_first() else {
        return Err(format!("`bench` needs a target:\n{}", list()));
    };
    if !TARGETS.iter().any(|(name, _)| name == target) {
        return Err(format!("unknown bench target `{target}`; targets:\n{}", list()));
    }
    let mut command =
        cargo(&["run", "--release", "--quiet", "-p", "minikv-bench", "--bin", target, "--"]);
    command.args(rest);
    run_passthrough(&mut command)
}
