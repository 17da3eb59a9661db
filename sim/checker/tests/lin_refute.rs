//! Refuting linearizability: dense histories with one planted impossible read get `invalid`
//! (not `unknown`), naming the read; and the refutations are sound, never firing on a key the
//! search can linearize.

use minikv_checker::history::{History, OpFn};
use minikv_checker::lin::generate::{PlantedRead, RegisterWorkload, generate, plant_read};
use minikv_checker::lin::{self, FailureReason, LinConfig, LinReport};
use minikv_checker::parse_history;
use minikv_checker::report::Validity;
use proptest::prelude::*;

fn check_planted(plant: PlantedRead) -> (History, LinReport) {
    let text = plant_read(&generate(&RegisterWorkload::dense_3k()), plant);
    let h = parse_history(&text).expect("planted histories parse");
    let report = lin::check_with(&h, &LinConfig::default());
    (h, report)
}

/// The op that reads `value` on `key` with an ok read.
fn read_of(h: &History, value: i64) -> usize {
    let reads: Vec<usize> = (0..h.ops.len())
        .filter(|&i| h.ops[i].f == OpFn::Read && h.ops[i].result == Some(serde_json::json!(value)))
        .collect();
    assert_eq!(reads.len(), 1, "one planted read of {value}");
    reads[0]
}

#[test]
fn the_dense_history_without_a_plant_is_valid() {
    let h = parse_history(&generate(&RegisterWorkload::dense_3k())).expect("parses");
    assert_eq!(lin::check(&h).valid, Validity::Valid);
}

#[test]
fn a_read_of_a_value_never_written_is_refuted_in_a_dense_history() {
    let (h, report) = check_planted(PlantedRead::NeverWritten);
    assert_eq!(report.verdict.valid, Validity::Invalid, "{:?}", report.verdict.anomalies);
    let failure = report.failure.expect("a failure is described");
    assert_eq!(failure.op, read_of(&h, -1));
    assert_eq!(failure.reason, FailureReason::Unproduced { first_producer: None });
    let anomaly = &report.verdict.anomalies[0];
    assert_eq!(anomaly.kind, "nonlinearizable");
    assert!(anomaly.explanation.contains("could have written"), "{}", anomaly.explanation);
    let page = minikv_checker::html::render(&h, &failure, &anomaly.explanation);
    assert!(page.contains("failed-op"));
}

#[test]
fn a_read_from_the_future_is_refuted_in_a_dense_history() {
    let (h, report) = check_planted(PlantedRead::FromTheFuture);
    assert_eq!(report.verdict.valid, Validity::Invalid, "{:?}", report.verdict.anomalies);
    let failure = report.failure.expect("a failure is described");
    assert_eq!(failure.op, read_of(&h, -1));
    let writer = h.ops.len() - 1;
    assert_eq!(h.ops[writer].value, serde_json::json!(-1), "the late write is the last op");
    assert_eq!(failure.reason, FailureReason::Unproduced { first_producer: Some(writer) });
    let explanation = &report.verdict.anomalies[0].explanation;
    assert!(explanation.contains(&format!("op {writer} ")), "{explanation}");
}

#[test]
fn a_stale_read_is_refuted_in_a_dense_history() {
    let (h, report) = check_planted(PlantedRead::Stale);
    assert_eq!(report.verdict.valid, Validity::Invalid, "{:?}", report.verdict.anomalies);
    let failure = report.failure.expect("a failure is described");
    assert!(
        matches!(failure.reason, FailureReason::Window { .. }),
        "found by a window: {:?}",
        failure.reason
    );
    let page = minikv_checker::html::render(&h, &failure, &report.verdict.anomalies[0].explanation);
    assert!(page.contains("failed-op"));
}

#[test]
fn a_window_needs_the_operations_open_at_its_edges() {
    // Write 1 and read 1 are concurrent with a write of 2 that began long before: a window that
    // starts after the write of 2 began must still let it land inside (or have landed before).
    let text = [
        (0, "invoke", "write", "2", 0),
        (1, "invoke", "write", "1", 10),
        (1, "ok", "write", "1", 11),
        (1, "invoke", "read", "null", 12),
        (1, "ok", "read", "1", 13),
        (1, "invoke", "read", "null", 14),
        (1, "ok", "read", "2", 15),
        (0, "ok", "write", "2", 16),
        (1, "invoke", "read", "null", 17),
        (1, "ok", "read", "2", 18),
    ]
    .iter()
    .map(|(p, t, f, v, time)| {
        format!(r#"{{"process":{p},"type":"{t}","f":"{f}","value":{v},"time":{time}}}"#)
    })
    .collect::<Vec<_>>()
    .join("\n");
    let h = parse_history(&text).expect("parses");
    let search_only = LinConfig { refute: false, ..LinConfig::default() };
    assert_eq!(lin::check_with(&h, &search_only).verdict.valid, Validity::Valid);
    for first_window_ops in 2..6 {
        assert_eq!(lin::refute_only(&h, first_window_ops), None, "windows of {first_window_ops}");
    }
}

/// Rewrites the `n`-th ok completion (mod their number) of a generated history: a read or a
/// cas gets another value from the domain, or a write, a cas or an append becomes `info`.
fn perturb(text: &str, n: usize, value: i64) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let oks: Vec<usize> =
        (0..lines.len()).filter(|&i| lines[i].contains(r#""type":"ok""#)).collect();
    let Some(&i) = oks.get(n % oks.len().max(1)) else { return text.to_string() };
    let line = &lines[i];
    let at = line.find(r#""value":"#).expect("a value") + r#""value":"#.len();
    let end = at + line[at..].find(r#","time""#).expect("time follows value");
    lines[i] = if line.contains(r#""f":"read""#) {
        format!("{}{value}{}", &line[..at], &line[end..])
    } else if line.contains(r#""f":"cas""#) && n.is_multiple_of(2) {
        let new = &line[at..end].trim_start_matches('[').split(',').nth(1).expect("[old,new]");
        format!("{}[{value},{new}{}", &line[..at], &line[end..])
    } else {
        line.replace(r#""type":"ok""#, r#""type":"info""#)
    };
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// On histories both linearizable and not, dense and sparse, a refutation (the value check,
    /// or a window of any size) fires only where the search finds no linearization.
    #[test]
    fn refutations_fire_only_on_histories_the_search_rejects(
        seed in any::<u64>(),
        processes in 1u64..12,
        keys in 1u64..3,
        ops in 1usize..120,
        domain in 2u64..5,
        crash_per_mille in 0u32..200,
        perturbations in prop::collection::vec((any::<usize>(), -1i64..5), 0..3),
        first_window_ops in 2usize..9,
    ) {
        let w = RegisterWorkload {
            seed, ops, processes, keys, value_domain: Some(domain), crash_per_mille,
            ..RegisterWorkload::default()
        };
        let mut text = generate(&w);
        for (n, value) in &perturbations {
            text = perturb(&text, *n, *value);
        }
        let h = parse_history(&text).expect("perturbed histories parse");
        let search_only = LinConfig { refute: false, ..LinConfig::default() };
        let verdict = lin::check_with(&h, &search_only).verdict.valid;
        prop_assert_ne!(verdict, Validity::Unknown, "small histories are decided");
        if let Some(failure) = lin::refute_only(&h, first_window_ops) {
            prop_assert_eq!(
                verdict, Validity::Invalid,
                "refuted by {:?} at op {} but the search linearizes it: {:?}\n{}",
                failure.reason, failure.op, w, text
            );
        }
    }
}
