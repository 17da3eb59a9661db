//! `cargo xtask bench <target>`: runs one benchmark binary of `minikv-bench` in release mode.

use crate::cmd::{cargo, run_passthrough, with_madsim};
use std::process::ExitCode;

/// One benchmark target: its name, its binary in bench/src/bin/, whether it runs on the madsim
/// simulator, and what it measures.
struct Target {
    name: &'static str,
    bin: &'static str,
    madsim: bool,
    what: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "raft",
        bin: "raft",
        madsim: false,
        what: "3-node in-memory Raft, 128-byte proposals; committed entries/s vs raft-rs",
    },
    Target {
        name: "engine",
        bin: "engine",
        madsim: false,
        what: "batched writes, point reads and scans on file and simulated disks vs raw redb",
    },
    Target {
        name: "checker",
        bin: "checker",
        madsim: false,
        what: "linearizability and snapshot-isolation checkers on generated histories",
    },
    Target {
        name: "sim-kv",
        bin: "sim_kv",
        madsim: true,
        what: "5 stores, 1 region, 16 clients, 60 simulated s on madsim; simulated/wall ratio",
    },
];

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let list = || {
        TARGETS.iter().map(|t| format!("  {:<8} {}", t.name, t.what)).collect::<Vec<_>>().join("\n")
    };
    let Some((name, rest)) = args.split_first() else {
        return Err(format!("`bench` needs a target:\n{}", list()));
    };
    let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
        return Err(format!("unknown bench target `{name}`; targets:\n{}", list()));
    };
    let mut command =
        cargo(&["run", "--release", "--quiet", "-p", "minikv-bench", "--bin", target.bin, "--"]);
    if target.madsim {
        with_madsim(&mut command);
    }
    command.args(rest);
    run_passthrough(&mut command)
}
