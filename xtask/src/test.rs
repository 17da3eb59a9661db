//! `cargo xtask test`: the README's test command. Lints and tests, in the plain build and again
//! with `--cfg madsim` in its own target directory so the two builds do not evict each other.

use crate::cmd::{cargo, run_step, with_madsim};
use std::process::ExitCode;

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    if let Some(arg) = args.first() {
        return Err(format!("`test` takes no arguments, got `{arg}`"));
    }
    run_step("fmt", &mut cargo(&["fmt", "--all", "--check"]))?;
    for (build, simulated) in [("plain", false), ("madsim", true)] {
        let with_build = |args: &[&str]| {
            let mut command = cargo(args);
            if simulated {
                with_madsim(&mut command);
            }
            command
        };
        run_step(
            &format!("clippy/{build}"),
            &mut with_build(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        )?;
        run_step(&format!("test/{build}"), &mut with_build(&["test", "--workspace"]))?;
    }
    eprintln!("xtask: all steps passed (fmt, clippy and tests in the plain and madsim builds)");
    Ok(ExitCode::SUCCESS)
}
