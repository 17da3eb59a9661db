//! `cargo xtask bench <target>`: runs a target's benchmark binaries, built with the `optimized`
//! profile, one after the other (those of `minikv-bench`, and `minikv-sim bench` for `sim`),
//! each with all of the user's arguments; the first that fails stops the run.

use crate::cmd::{Profile, cargo, run_madsim, run_passthrough};
use std::process::ExitCode;

/// One benchmark target: its name, the binaries it runs in order, and what it measures.
struct Target {
    name: &'static str,
    steps: &'static [Step],
    what: &'static str,
}

/// One binary of a target: its package and name, the arguments that come before the user's
/// (every step gets all of the user's), and whether it runs on the madsim simulator.
struct Step {
    package: &'static str,
    bin: &'static str,
    args: &'static [&'static str],
    madsim: bool,
}

/// A plain-build binary of `minikv-bench` with no arguments of its own.
const fn plain(bin: &'static str) -> Step {
    Step { package: "minikv-bench", bin, args: &[], madsim: false }
}

/// A `--cfg madsim` binary of `minikv-bench` with no arguments of its own.
const fn madsim(bin: &'static str) -> Step {
    Step { package: "minikv-bench", bin, args: &[], madsim: true }
}

const TARGETS: &[Target] = &[
    Target {
        name: "raft",
        steps: &[plain("raft")],
        what: "3-node in-memory Raft, 128-byte proposals; committed entries/s vs raft-rs",
    },
    Target {
        name: "engine",
        steps: &[plain("engine")],
        what: "batched writes, point reads and scans on file and simulated disks vs raw redb",
    },
    Target {
        name: "checker",
        steps: &[plain("checker")],
        what: "linearizability and snapshot-isolation checkers on generated histories",
    },
    Target {
        name: "sim-kv",
        steps: &[madsim("sim_kv")],
        what: "5 stores, 1 region, 16 clients, 60 simulated s on madsim; simulated/wall ratio",
    },
    Target {
        name: "pd",
        steps: &[madsim("pd_sim"), plain("pd_tcp")],
        what: "3-node PD, 1|16 clients, tso(1|64): timestamps/s on madsim, then on loopback TCP \
               with p50/p99 [--clients 1,16 --batches 1,64 --sim-secs 60 --wall-secs 5]",
    },
    Target {
        name: "sim",
        steps: &[Step { package: "minikv-sim", bin: "minikv-sim", args: &["bench"], madsim: true }],
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
    for step in target.steps {
        let code = run_binary(step, rest)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds and runs one binary with its own arguments and then `rest`; its exit code.
fn run_binary(step: &Step, rest: &[String]) -> Result<ExitCode, String> {
    let args: Vec<&str> =
        step.args.iter().copied().chain(rest.iter().map(String::as_str)).collect();
    if step.madsim {
        return run_madsim(step.package, step.bin, Profile::Optimized, &args);
    }
    let profile = Profile::Optimized.name();
    let mut command = cargo(&[
        "run",
        "--profile",
        profile,
        "--quiet",
        "-p",
        step.package,
        "--bin",
        step.bin,
        "--",
    ]);
    command.args(args);
    run_passthrough(&mut command)
}
