//! `minikv-check`: checks a history file against a consistency model (`cargo xtask check`).
//!
//! Exit status: 0 valid, 1 invalid, 3 unknown (a budget ran out), 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use minikv_checker::history::{History, OpFn};
use minikv_checker::report::{Validity, Verdict};
use minikv_checker::{html, lin, parse_file_with, si};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Linearizable,
    SnapshotIsolation,
    StrongSessionSnapshotIsolation,
    StrongSnapshotIsolation,
    Serializable,
    StrongSessionSerializable,
    StrictSerializable,
}

impl ModelArg {
    fn name(self) -> &'static str {
        match self {
            ModelArg::Linearizable => "linearizable",
            ModelArg::SnapshotIsolation => "snapshot-isolation",
            ModelArg::StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            ModelArg::StrongSnapshotIsolation => "strong-snapshot-isolation",
            ModelArg::Serializable => "serializable",
            ModelArg::StrongSessionSerializable => "strong-session-serializable",
            ModelArg::StrictSerializable => "strict-serializable",
        }
    }
}

/// Check a Jepsen-shaped history (JSON lines) against a consistency model.
#[derive(Debug, Parser)]
#[command(name = "minikv-check")]
struct Args {
    /// The consistency model to check.
    #[arg(long, value_enum)]
    model: ModelArg,
    /// The history file (JSON lines).
    file: PathBuf,
    /// Write an HTML timeline of the first non-linearizable key here (linearizable only).
    #[arg(long)]
    html: Option<PathBuf>,
    /// End stdout with one JSON object summarizing the verdict.
    #[arg(long)]
    json: bool,
    /// Worker threads for independent keys (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Wall-clock budget; when it runs out the verdict is unknown.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Memory budget of the linearizability search.
    #[arg(long, default_value_t = 1024)]
    max_memory_mib: usize,
}

const EXIT_VALID: u8 = 0;
const EXIT_INVALID: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_UNKNOWN: u8 = 3;

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let history = match parse_file_with(&args.file, threads) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("minikv-check: bad input: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let verdict = match args.model {
        ModelArg::Linearizable => match check_linearizable(&args, &history, started) {
            Ok(v) => v,
            Err(message) => {
                eprintln!("minikv-check: {message}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        },
        other => {
            if args.html.is_some() {
                eprintln!("minikv-check: --html draws linearizability failures only; ignored");
            }
            let model = si::Model::from_name(other.name()).expect("si knows every SI model");
            let verdict = si::check(&history, model);
            // A transaction whose micro-ops are malformed is bad input, not an unknown verdict.
            if let Some(bad) = verdict.anomalies.iter().find(|a| a.kind == "malformed-txn") {
                eprintln!("minikv-check: bad input: {}: {}", args.file.display(), bad.explanation);
                return ExitCode::from(EXIT_BAD_INPUT);
            }
            verdict
        }
    };
    let ms = started.elapsed().as_millis();
    print_verdict(&args, &history, &verdict, ms);
    ExitCode::from(match verdict.valid {
        Validity::Valid => EXIT_VALID,
        Validity::Invalid => EXIT_INVALID,
        Validity::Unknown => EXIT_UNKNOWN,
    })
}

fn check_linearizable(args: &Args, history: &History, started: Instant) -> Result<Verdict, String> {
    // A history of transactions only is a question for another model; transactions beside
    // register operations (a simulation's raw batches) are left to it and the rest is checked.
    if history.ops.iter().all(|op| op.f == OpFn::Txn)
        && let Some(op) = history.ops.first()
    {
        return Err(format!(
            "bad input: {}: line {}: field `f`: txn operations cannot be checked for \
             linearizability (use a snapshot-isolation model)",
            args.file.display(),
            op.invoke_line
        ));
    }
    let deadline = started + Duration::from_secs(args.timeout_s);
    let stop = move || Instant::now() >= deadline;
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let config = lin::LinConfig {
        max_memory_bytes: args.max_memory_mib << 20,
        threads,
        should_stop: Some(&stop),
        ..lin::LinConfig::default()
    };
    let report = lin::check_with(history, &config);
    if let Some(path) = &args.html {
        match &report.failure {
            Some(failure) => {
                let page = html::render(history, failure, &lin::explain(history, failure));
                std::fs::write(path, page)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!("timeline written to {}", path.display());
            }
            None => println!("no non-linearizable key: no timeline written"),
        }
    }
    Ok(report.verdict)
}

fn print_verdict(args: &Args, history: &History, verdict: &Verdict, ms: u128) {
    let word = match verdict.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    println!(
        "{}: {word} under {} ({} operations, {ms} ms)",
        args.file.display(),
        args.model.name(),
        history.ops.len()
    );
    for anomaly in &verdict.anomalies {
        println!("  {}: {}", anomaly.kind, anomaly.explanation);
    }
    if args.json {
        let valid = match verdict.valid {
            Validity::Valid => serde_json::Value::Bool(true),
            Validity::Invalid => serde_json::Value::Bool(false),
            Validity::Unknown => serde_json::Value::String("unknown".to_string()),
        };
        let summary = serde_json::json!({
            "valid": valid,
            "model": args.model.name(),
            "ops": history.ops.len(),
            "anomalies": verdict.anomalies,
            "ms": ms,
        });
        println!("{summary}");
    }
}
