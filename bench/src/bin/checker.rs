//! `cargo xtask bench checker`: the history checkers on seeded generated histories (valid ones,
//! and dense ones with an impossible read planted) and on Porcupine's corpus, with wall time
//! and peak memory. The last line names every figure.
//!
//! Peak memory is the process's high-water RSS (`VmHWM`), reset before each figure through
//! `/proc/self/clear_refs` so that one figure's peak does not leak into the next.

use std::path::PathBuf;
use std::time::Instant;

use minikv_checker::lin::generate::{PlantedRead, RegisterWorkload, generate, plant_read};
use minikv_checker::lin::{self, LinConfig};
use minikv_checker::report::Validity;
use minikv_checker::{parse_file, parse_history, parse_history_with};

/// Resets the high-water RSS mark (Linux); harmless elsewhere.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// High-water RSS in MiB since the last reset, if the platform reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) the process has used so far, all threads, in seconds (Linux;
/// 0 elsewhere). The machine is shared, so wall time alone says little about our own cost.
fn cpu_s() -> f64 {
    /// Clock ticks per second of `/proc/self/stat` (`USER_HZ`, 100 on Linux).
    const TICKS_PER_S: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(14) + ticks(15)) / TICKS_PER_S
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Generates a register history, then times parsing plus checking it.
/// Returns (seconds, peak MiB, verdict).
fn time_register_check(w: &RegisterWorkload) -> (f64, f64, Validity) {
    let text = generate(w);
    reset_peak_rss();
    let base_mib = peak_rss_mib().unwrap_or(0.0);
    let cpu_start_s = cpu_s();
    let start = Instant::now();
    let history = parse_history_with(&text, threads()).expect("generated histories parse");
    let parsed_s = start.elapsed().as_secs_f64();
    let parse_cpu_s = cpu_s() - cpu_start_s;
    let config = LinConfig { threads: threads(), ..LinConfig::default() };
    let report = lin::check_with(&history, &config);
    let total_s = start.elapsed().as_secs_f64();
    let total_cpu_s = cpu_s() - cpu_start_s;
    let peak = peak_rss_mib().unwrap_or(0.0);
    println!(
        "  {} ops, {} processes, {} keys: parse {:.3} s, check {:.3} s, total {:.3} s \
         (CPU: parse {:.2} s, check {:.2} s), peak RSS {:.0} MiB ({:.0} MiB held before), \
         verdict {:?}",
        history.ops.len(),
        w.processes,
        w.keys,
        parsed_s,
        total_s - parsed_s,
        total_s,
        parse_cpu_s,
        total_cpu_s - parse_cpu_s,
        peak,
        base_mib,
        report.verdict.valid
    );
    (total_s, peak, report.verdict.valid)
}

fn lin_1m() -> f64 {
    println!("lin-1m: 1,000,000 register ops (read/write/cas), 10 processes, 1,000 keys");
    let w = RegisterWorkload {
        seed: 1,
        ops: 1_000_000,
        processes: 10,
        keys: 1_000,
        value_domain: None,
        crash_per_mille: 2,
        ..RegisterWorkload::default()
    };
    let (s, _, v) = time_register_check(&w);
    assert_eq!(v, Validity::Valid, "the generated history is linearizable by construction");
    s
}

fn lin_20k_100p() -> (f64, f64) {
    println!("lin-20k-100p: 20,000 register ops, 100 processes, 10 keys (~10 in flight per key)");
    let w = RegisterWorkload {
        seed: 2,
        ops: 20_000,
        processes: 100,
        keys: 10,
        value_domain: None,
        crash_per_mille: 10,
        ..RegisterWorkload::default()
    };
    let (s, mib, v) = time_register_check(&w);
    assert_eq!(v, Validity::Valid, "the generated history is linearizable by construction");
    // Not part of the headline figure: the same shape with values from a small domain, and
    // with one read corrupted (the search must then exhaust the choices before saying no).
    let small = RegisterWorkload { value_domain: Some(5), seed: 3, ..w };
    let (_, _, v) = time_register_check(&small);
    assert_ne!(v, Validity::Invalid, "a linearizable history is never called invalid");
    let text = generate(&w);
    let corrupted = corrupt_last_read(&text);
    let start = Instant::now();
    let h = parse_history(&corrupted).expect("parses");
    let report = lin::check_with(&h, &LinConfig { threads: threads(), ..LinConfig::default() });
    println!(
        "  same history, one read corrupted: {:?} in {:.3} s",
        report.verdict.valid,
        start.elapsed().as_secs_f64()
    );
    (s, mib)
}

/// Makes the last ok read return a value nobody wrote.
fn corrupt_last_read(text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = lines
        .iter()
        .rposition(|l| l.contains(r#""type":"ok","f":"read""#))
        .expect("the history has a read");
    let at = lines[i].find(r#""value":"#).expect("value") + r#""value":"#.len();
    let end = at + lines[i][at..].find(',').expect("time follows value");
    lines[i] = format!("{}-777{}", &lines[i][..at], &lines[i][end..]);
    lines.join("\n")
}

/// Parses and checks `text` with the default budgets: (seconds, verdict).
fn time_lin_text(text: &str) -> (f64, Validity) {
    let start = Instant::now();
    let h = parse_history(text).expect("parses");
    let report = lin::check_with(&h, &LinConfig { threads: threads(), ..LinConfig::default() });
    (start.elapsed().as_secs_f64(), report.verdict.valid)
}

/// The dense history as generated (linearizable) and with each kind of impossible read planted
/// (a verdict must come as fast for those as for the valid one). Returns the slowest invalid
/// one's seconds.
fn lin_dense_3k() -> f64 {
    println!("lin-dense-3k: 3,000 register ops, 40 processes, 2 keys, values 0..5");
    let text = generate(&RegisterWorkload::dense_3k());
    let (s, v) = time_lin_text(&text);
    assert_eq!(v, Validity::Valid, "the generated history is linearizable by construction");
    println!("  valid: {v:?} in {s:.3} s");
    let mut slowest_s: f64 = 0.0;
    for plant in [PlantedRead::NeverWritten, PlantedRead::FromTheFuture, PlantedRead::Stale] {
        let (s, v) = time_lin_text(&plant_read(&text, plant));
        assert_ne!(v, Validity::Valid, "a planted impossible read is never linearizable");
        println!("  planted {plant:?} read: {v:?} in {s:.3} s");
        slowest_s = slowest_s.max(s);
    }
    slowest_s
}

fn porcupine_108() -> f64 {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/porcupine");
    let expected = std::fs::read_to_string(dir.join("EXPECTED"))
        .unwrap_or_else(|e| panic!("the Porcupine corpus is missing at {}: {e}", dir.display()));
    let cases: Vec<(String, bool)> = expected
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().expect("a file name").to_string();
            (name, parts.next() == Some("true"))
        })
        .collect();
    println!("porcupine-108: {} Porcupine histories, parse + check, single thread", cases.len());
    let start = Instant::now();
    for (name, linearizable) in &cases {
        let history = parse_file(dir.join(name)).expect("corpus parses");
        let verdict = lin::check(&history).valid;
        let want = if *linearizable { Validity::Valid } else { Validity::Invalid };
        assert_eq!(verdict, want, "{name}");
    }
    let s = start.elapsed().as_secs_f64();
    println!("  all verdicts match Porcupine's in {s:.3} s");
    s
}

// ---- snapshot isolation: filled in by the SI checker's author -------------------------------

/// Timed runs of the SI check; the figure is the best, since the history is already in memory.
const SI_REPEATS: usize = 3;

/// The SI figure: 100,000 list-append transactions (1-4 reads and appends each), 20 processes,
/// 100 keys in use at a time (each retired after 32 appends, as Elle's generator does), with
/// aborted and indeterminate transactions; times `si::check` (conversion, inference, graph,
/// SCCs and cycle search) on the in-memory history. Returns "si-100k <txn/s> txn/s".
fn si_figure() -> String {
    use minikv_checker::si::generate::{ListAppendConfig, list_append};
    use minikv_checker::si::{self, Model};
    let config = ListAppendConfig {
        seed: 1,
        txn_count: 100_000,
        process_count: 20,
        active_key_count: 100,
        appends_per_key_max: 32,
        ..ListAppendConfig::default()
    };
    println!(
        "si-100k: {} list-append txns, {} processes, {} keys in use, snapshot isolation",
        config.txn_count, config.process_count, config.active_key_count
    );
    let history = list_append(&config);
    reset_peak_rss();
    let base_mib = peak_rss_mib().unwrap_or(0.0);
    let mut best_s = f64::INFINITY;
    for _ in 0..SI_REPEATS {
        let start = Instant::now();
        let verdict = si::check(&history, Model::SnapshotIsolation);
        best_s = best_s.min(start.elapsed().as_secs_f64());
        assert_eq!(verdict.valid, Validity::Valid, "generated histories are SI by construction");
    }
    let rate = (config.txn_count as f64 / best_s).round();
    println!(
        "  check {best_s:.3} s (best of {SI_REPEATS}), {rate:.0} txn/s, peak RSS {:.0} MiB \
         ({base_mib:.0} MiB held before)",
        peak_rss_mib().unwrap_or(0.0)
    );
    for model in [Model::StrongSnapshotIsolation, Model::Serializable] {
        let start = Instant::now();
        let verdict = si::check(&history, model);
        println!(
            "  {}: {:?} ({} anomalies) in {:.3} s",
            model.name(),
            verdict.valid,
            verdict.anomalies.len(),
            start.elapsed().as_secs_f64()
        );
    }
    format!("si-100k {rate:.0} txn/s")
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let porcupine_s = porcupine_108();
    let (lin20k_s, lin20k_mib) = lin_20k_100p();
    let lin1m_s = lin_1m();
    let dense_s = lin_dense_3k();
    let si = si_figure();
    println!(
        "checker: lin-1m {lin1m_s:.3} s, lin-20k-100p {lin20k_s:.3} s {lin20k_mib:.0} MiB, \
         lin-dense-3k invalid {dense_s:.3} s, porcupine-108 {porcupine_s:.3} s, {si}"
    );
}
