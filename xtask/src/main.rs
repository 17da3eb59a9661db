//! `cargo xtask <command>`: the project's single front door. One module per command.

mod bench;
mod check;
mod cmd;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  test                 fmt, clippy and every test, in the plain and the --cfg madsim build
  bench <target>       run a benchmark in release mode (targets: raft, engine, checker, sim-kv)
  check [args]         check a history file: cargo xtask check --model linearizable FILE [--html OUT] [--json]

Scenario runs (sim, replay, sweep) arrive with the simulation harness (issue 6).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
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
