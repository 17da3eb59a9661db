//! Running child commands: echo them, run them from the workspace root, map their exit status.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().expect("xtask sits inside the workspace").to_path_buf()
}

/// A `cargo` command rooted at the workspace, using the same cargo that runs xtask.
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace_root());
    command
}

/// The madsim build's target directory, relative to the workspace root, so the plain and the
/// simulated builds do not evict each other.
pub const MADSIM_TARGET_DIR: &str = "target/madsim";

/// Switches `command` to the simulated build: `--cfg madsim` and its own target directory.
pub fn with_madsim(command: &mut Command) {
    let rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    command.env("RUSTFLAGS", format!("{rustflags} --cfg madsim").trim());
    command.env("CARGO_TARGET_DIR", MADSIM_TARGET_DIR);
}

/// Runs `command`, echoing it first; Ok(()) only on exit status 0.
pub fn run_step(label: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: [{label}] {}", describe(command));
    let status = command.status().map_err(|e| format!("[{label}] could not start: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("[{label}] failed with {status}")) }
}

/// Runs `command` and passes its exit code through (for commands whose codes carry meaning).
pub fn run_passthrough(command: &mut Command) -> Result<ExitCode, String> {
    let status =
        command.status().map_err(|e| format!("could not start {}: {e}", describe(command)))?;
    let code = status.code().unwrap_or(2);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
}

fn describe(command: &Command) -> String {
    let mut text = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            text.push_str(&format!("{}={} ", key.to_string_lossy(), value.to_string_lossy()));
        }
    }
    text.push_str(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}
