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

/// Overrides [`MADSIM_TARGET_DIR`] (for CI caches, or several builds side by side).
pub const MADSIM_TARGET_DIR_ENV: &str = "MINIKV_MADSIM_TARGET_DIR";

/// The madsim build's target directory: `$MINIKV_MADSIM_TARGET_DIR`, else `target/madsim` in
/// the workspace.
pub fn madsim_target_dir() -> PathBuf {
    match std::env::var_os(MADSIM_TARGET_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(MADSIM_TARGET_DIR),
    }
}

/// Switches `command` to the simulated build: `--cfg madsim` and its own target directory.
pub fn with_madsim(command: &mut Command) {
    // Doctests are compiled by rustdoc, which reads RUSTDOCFLAGS: without the cfg there, a
    // doctest would see the plain-build code against the madsim build's dependencies.
    for var in ["RUSTFLAGS", "RUSTDOCFLAGS"] {
        let flags = std::env::var(var).unwrap_or_default();
        command.env(var, format!("{flags} --cfg madsim").trim());
    }
    command.env("CARGO_TARGET_DIR", madsim_target_dir());
}

/// The cargo profile a build uses (see `Cargo.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `release`: quick to rebuild, for one-off runs and replays.
    Release,
    /// `optimized`: release with whole-program optimization, slower to build and faster to
    /// run, for sweeps and benchmarks.
    Optimized,
}

impl Profile {
    /// The profile's name, which is also its directory under the target directory.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Optimized => "optimized",
        }
    }
}

/// Builds `bin` of `package` with `profile` for the simulated build (`--cfg madsim`, target
/// dir [`madsim_target_dir`]) and returns the binary's path. Cargo's progress goes to stderr, so
/// the binary's stdout is all that reaches ours.
pub fn build_madsim(package: &str, bin: &str, profile: Profile) -> Result<PathBuf, String> {
    let mut build = cargo(&["build", "--profile", profile.name(), "-p", package, "--bin", bin]);
    with_madsim(&mut build);
    run_step("build", &mut build)?;
    let exe = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
    Ok(madsim_target_dir().join(profile.name()).join(exe))
}

/// Builds `bin` with [`build_madsim`] and runs it with `args` from the caller's directory (so
/// relative paths in `args` mean what the user meant), passing its exit code through.
pub fn run_madsim<S: AsRef<std::ffi::OsStr>>(
    package: &str,
    bin: &str,
    profile: Profile,
    args: &[S],
) -> Result<ExitCode, String> {
    let exe = build_madsim(package, bin, profile)?;
    run_passthrough(Command::new(exe).args(args))
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
