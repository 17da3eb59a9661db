//! `cargo xtask <command>`: the project's single front door. One module per command.

mod bench;
mod check;
mod cmd;
mod sim;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  sim --scenario NAME|PATH --seed N [--json] [--history FILE] [--trace FILE]
      [--trace-level info|debug] [--check-determinism] [--canary NAME]
                       run one scenario with one seed; exit 0 pass, 1 fail/liveness/crash, 2 bad input
  replay FILE.toml [--json]
                       re-run a seed file (seeds/*.toml) with full tracing into target/replay/
  sweep --scenario NAME|all --seeds A..B [--jobs N] [--shard i/n] [--out FILE] [--save-failures DIR] [--recheck-every N] [--canary NAME]
                       run many seeds in parallel: JSON lines, replay commands for failures
  canaries [--seeds N] [--budgets] [--canary NAME] [--jobs N] [--list]
                       the standard sweep with each planted bug on: detection rate, seeds to first
                       detection and the catching check (--budgets: CI's short version)
  test                 fmt, clippy and every test, in the plain and the --cfg madsim build
  bench <target>       run a benchmark, optimized build (targets: raft, engine, checker, sim-kv, pd, sim)
  check [args]         check a history file: cargo xtask check --model linearizable FILE [--html OUT] [--json]

sim, replay, sweep and bench sim build minikv-sim with --cfg madsim in target/madsim (bench
sim-kv and the simulated half of bench pd build theirs there too): sim and replay with the
release profile (quick to rebuild), sweep and bench with the optimized profile (whole-program
optimization: slower to build, faster to run); `cargo xtask sim --help` shows every flag.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "sim" => sim::run("run", rest),
        "replay" => sim::run("replay", rest),
        "sweep" => sim::run("sweep", rest),
        "canaries" => sim::run("canaries", rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "check" => check::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::from(2)
        }
    }
}
