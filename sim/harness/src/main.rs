//! The `minikv-sim` command (what `cargo xtask sim|replay|sweep|bench sim` run); the command
//! line itself lives in `minikv_sim::cli`.

use std::process::ExitCode;

/// Simulations allocate on every step; mimalloc does that faster than the system allocator.
/// Counted per thread, so that each run is held to its memory budget.
#[global_allocator]
static ALLOCATOR: minikv_sim::memory::CountingAlloc<mimalloc::MiMalloc> =
    minikv_sim::memory::CountingAlloc(mimalloc::MiMalloc);

#[cfg(madsim)]
fn main() -> ExitCode {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = minikv_sim::cli::main_with(
        std::env::args_os(),
        &minikv_sim::runner::run,
        &mut out,
        &mut err,
    );
    ExitCode::from(code)
}

#[cfg(not(madsim))]
fn main() -> ExitCode {
    eprintln!("minikv-sim must be built with --cfg madsim; use cargo xtask sim");
    ExitCode::from(minikv_sim::cli::EXIT_BAD_INPUT)
}
