//! `cargo xtask bench <target>`: runs one benchmark binary built with the `optimized` profile
//! (those of `minikv-bench`, and `minikv-sim bench` for `sim`).

use crate::cmd::{Profile, cargo, run_madsim, run_passthrough};
use std::process::ExitCode;

/// One benchmark target: its name, its package and binary, the arguments that come before the
/// user's, whether it runs on the madsim simulator, and what it measures.
struct Target {
    name: &'static str,
    package: &'static str,
    bin: &'static str,
    args: &'static [&'static str],
    madsim: bool,
    what: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "raft",
        package: "minikv-bench",
        bin: "raft",
        args: &[],
        madsim: false,
        what: "3-node in-memory Raft, 128-byte proposals; committed entries/s vs raft-rs",
    },
    Target {
        name: "engine",
        package: "minikv-bench",
        bin: "engine",
        args: &[],
        madsim: false,
        what: "batched writes, point reads and scans on file and simulated disks vs raw redb",
    },
    Target {
        name: "checker",
        package: "minikv-bench",
        bin: "checker",
        args: &[],
        madsim: false,
        what: "linearizability and snapshot-isolation checkers on generated histories",
    },
    Target {
        name: "sim-kv",
        package: "minikv-bench",
        bin: "sim_kv",
        args: &[],
        madsim: true,
        what: "5 stores, 1 region, 16 clients, 60 simulated s on madsim; simulated/wall ratio",
    },
    Target {
        name: "sim",
        package: "minikv-sim",
        bin: "minikv-sim",
        args: &["bench"],
        madsim: true,
        what: "every standard scenario, seeds 0..3 [--seeds N]: simulated/wall, seeds/core-hour",
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
    let args: Vec<&str> =
        target.args.iter().copied().chain(rest.iter().map(String::as_str)).collect();
    if target.madsim {
        return run_madsim(target.package, target.bin, Profile::Optimized, &args);
    }
    let profile = Profile::Optimized.name();
    let mut command = cargo(&[
        "run",
        "--profile",
        profile,
        "--quiet",
        "-p",
        target.package,
        "--bin",
        target.bin,
        "--",
    ]);
    command.args(args);
    run_passthrough(&mut command)
}
