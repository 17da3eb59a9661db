//! `cargo xtask test`: the README's test command. Lints and tests, in the plain build and again
//! with `--cfg madsim` in its own target directory so the two builds do not evict each other.

use crate::cmd::{cargo, run_step};
use std::process::ExitCode;

/// The madsim build's target directory, relative to the workspace root.
const MADSIM_TARGET_DIR: &str = "target/madsim";

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    if let Some(arg) = args.first() {
        return Err(format!("`test` takes no arguments, got `{arg}`"));
    }
    run_step("fmt", &mut cargo(&["fmt", "--all", "--check"]))?;
    for (build, target_dir) in [("plain", None), ("madsim", Some(MADSIM_TARGET_DIR))] {
        let with_build = |args: &[&str]| {
            let mut command = cargo(args);
            if let Some(dir) = target_dir {
                let rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
                command.env("RUSTFLAGS", format!("{rustflags} --cfg madsim").trim());
                command.env("CARGO_TARGET_DIR", dir);
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
