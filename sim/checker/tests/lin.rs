//! Linearizability: one short hand-written history per register feature, parse errors that
//! name line and field, and property tests over generated histories.

use minikv_checker::history::Outcome;
use minikv_checker::lin::generate::{RegisterWorkload, generate};
use minikv_checker::lin::{self, LinConfig};
use minikv_checker::report::Validity;
use minikv_checker::{ParseError, parse_history};
use proptest::prelude::*;

/// One event on the anonymous register: (process, type, f, value JSON, time).
type Ev<'a> = (u64, &'a str, &'a str, &'a str, i64);

fn history(events: &[Ev<'_>]) -> String {
    events
        .iter()
        .map(|(p, t, f, v, time)| {
            format!(r#"{{"process":{p},"type":"{t}","f":"{f}","value":{v},"time":{time}}}"#)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn verdict(events: &[Ev<'_>]) -> Validity {
    let h = parse_history(&history(events)).expect("test history parses");
    lin::check(&h).valid
}

#[test]
fn sequential_write_then_read() {
    let ok = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (0, "invoke", "read", "null", 2),
        (0, "ok", "read", "1", 3),
    ];
    assert_eq!(verdict(&ok), Validity::Valid);
    let stale = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (1, "invoke", "read", "null", 2),
        (1, "ok", "read", "null", 3),
    ];
    assert_eq!(verdict(&stale), Validity::Invalid, "a read after a write saw the old value");
}

#[test]
fn null_reads_the_never_written_register() {
    let ok = [(0, "invoke", "read", "null", 0), (0, "ok", "read", "null", 1)];
    assert_eq!(verdict(&ok), Validity::Valid);
    let concurrent = [
        (0, "invoke", "write", "1", 0),
        (1, "invoke", "read", "null", 1),
        (1, "ok", "read", "null", 2),
        (0, "ok", "write", "1", 3),
        (1, "invoke", "read", "null", 4),
        (1, "ok", "read", "1", 5),
    ];
    assert_eq!(verdict(&concurrent), Validity::Valid);
}

/// A delete is a write of `null` (and a cas to `null` a conditional delete): a read after it
/// returns `null`, never the deleted value.
#[test]
fn deletes_are_writes_of_null() {
    let deleted = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (0, "invoke", "write", "null", 2),
        (0, "ok", "write", "null", 3),
        (1, "invoke", "read", "null", 4),
        (1, "ok", "read", "null", 5),
    ];
    assert_eq!(verdict(&deleted), Validity::Valid);
    let mut resurrected = deleted;
    resurrected[5].3 = "1";
    assert_eq!(verdict(&resurrected), Validity::Invalid, "a read saw a deleted value");
    let cas_delete = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (0, "invoke", "cas", "[1,null]", 2),
        (0, "ok", "cas", "[1,null]", 3),
        (1, "invoke", "cas", "[null,2]", 4),
        (1, "ok", "cas", "[null,2]", 5),
    ];
    assert_eq!(verdict(&cas_delete), Validity::Valid);
    let mut failed_after_delete = cas_delete;
    failed_after_delete[5].1 = "fail";
    assert_eq!(verdict(&failed_after_delete), Validity::Invalid, "the key was deleted");
}

#[test]
fn failed_cas_is_a_read_that_saw_another_value() {
    // The register holds 1 for the whole cas interval: a cas [1, 2] cannot have failed.
    let impossible = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (1, "invoke", "cas", "[1,2]", 2),
        (1, "fail", "cas", "[1,2]", 3),
    ];
    assert_eq!(verdict(&impossible), Validity::Invalid);
    // With a concurrent write of 3, the compare can fail.
    let possible = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (2, "invoke", "write", "3", 2),
        (1, "invoke", "cas", "[1,2]", 3),
        (1, "fail", "cas", "[1,2]", 4),
        (2, "ok", "write", "3", 5),
    ];
    assert_eq!(verdict(&possible), Validity::Valid);
    // A successful cas needs the old value.
    let ok_cas = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (1, "invoke", "cas", "[1,2]", 2),
        (1, "ok", "cas", "[1,2]", 3),
        (1, "invoke", "read", "null", 4),
        (1, "ok", "read", "2", 5),
    ];
    assert_eq!(verdict(&ok_cas), Validity::Valid);
    let bad_cas = [(1, "invoke", "cas", "[1,2]", 2), (1, "ok", "cas", "[1,2]", 3)];
    assert_eq!(verdict(&bad_cas), Validity::Invalid, "cas [1,2] succeeded on a null register");
}

#[test]
fn indeterminate_write_may_apply_late() {
    // The info write of 2 must have taken effect after the ok write of 3 to explain the read.
    let must_apply = [
        (0, "invoke", "write", "2", 0),
        (0, "info", "write", "2", 1),
        (1, "invoke", "write", "3", 2),
        (1, "ok", "write", "3", 3),
        (1, "invoke", "read", "null", 4),
        (1, "ok", "read", "2", 5),
    ];
    assert_eq!(verdict(&must_apply), Validity::Valid);
    // It can take effect only once: 2, then 3, then 2 again is impossible.
    let twice = [
        (0, "invoke", "write", "2", 0),
        (1, "invoke", "read", "null", 1),
        (1, "ok", "read", "2", 2),
        (1, "invoke", "write", "3", 3),
        (1, "ok", "write", "3", 4),
        (1, "invoke", "read", "null", 5),
        (1, "ok", "read", "2", 6),
    ];
    assert_eq!(verdict(&twice), Validity::Invalid);
    // Never completed and never observed: it may simply not have happened.
    let never = [
        (0, "invoke", "write", "2", 0),
        (1, "invoke", "write", "3", 1),
        (1, "ok", "write", "3", 2),
        (1, "invoke", "read", "null", 3),
        (1, "ok", "read", "3", 4),
    ];
    assert_eq!(verdict(&never), Validity::Valid);
    // It cannot take effect before it was invoked.
    let too_early = [
        (1, "invoke", "read", "null", 0),
        (1, "ok", "read", "2", 1),
        (0, "invoke", "write", "2", 2),
        (0, "info", "write", "2", 3),
    ];
    assert_eq!(verdict(&too_early), Validity::Invalid);
}

#[test]
fn failed_write_never_happened() {
    let events = [
        (0, "invoke", "write", "2", 0),
        (0, "fail", "write", "2", 1),
        (1, "invoke", "read", "null", 2),
        (1, "ok", "read", "2", 3),
    ];
    assert_eq!(verdict(&events), Validity::Invalid);
}

#[test]
fn indeterminate_write_can_explain_a_failed_cas() {
    // cas [1,3] failed while the register held 1, unless the info write of 2 landed first.
    let events = [
        (0, "invoke", "write", "1", 0),
        (0, "ok", "write", "1", 1),
        (1, "invoke", "write", "2", 2),
        (1, "info", "write", "2", 3),
        (0, "invoke", "cas", "[1,3]", 4),
        (0, "fail", "cas", "[1,3]", 5),
        (0, "invoke", "write", "5", 6),
        (0, "ok", "write", "5", 7),
        (0, "invoke", "read", "null", 8),
        (0, "ok", "read", "5", 9),
    ];
    assert_eq!(verdict(&events), Validity::Valid);
    let without_it: Vec<Ev<'_>> = events.iter().copied().filter(|e| e.0 != 1).collect();
    assert_eq!(verdict(&without_it), Validity::Invalid);
}

#[test]
fn append_concatenates_strings() {
    let ok = [
        (0, "invoke", "append", r#""a""#, 0),
        (1, "invoke", "append", r#""b""#, 1),
        (0, "ok", "append", r#""a""#, 2),
        (1, "ok", "append", r#""b""#, 3),
        (2, "invoke", "read", "null", 4),
        (2, "ok", "read", r#""ba""#, 5),
    ];
    assert_eq!(verdict(&ok), Validity::Valid, "concurrent appends may land in either order");
    let lost = [
        (0, "invoke", "append", r#""a""#, 0),
        (0, "ok", "append", r#""a""#, 1),
        (1, "invoke", "append", r#""b""#, 2),
        (1, "ok", "append", r#""b""#, 3),
        (2, "invoke", "read", "null", 4),
        (2, "ok", "read", r#""b""#, 5),
    ];
    assert_eq!(verdict(&lost), Validity::Invalid, "the first append was lost");
    let empty = [
        (2, "invoke", "read", "null", 0),
        (2, "ok", "read", r#""""#, 1),
        (2, "invoke", "append", r#""a""#, 2),
        (2, "ok", "append", r#""a""#, 3),
        (2, "invoke", "read", "null", 4),
        (2, "ok", "read", r#""a""#, 5),
    ];
    assert_eq!(verdict(&empty), Validity::Valid, "on a string key null and \"\" are one state");
}

#[test]
fn keys_are_checked_independently_and_reported() {
    let text = [
        r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":0}"#,
        r#"{"process":0,"type":"ok","f":"write","key":"x","value":1,"time":1}"#,
        r#"{"process":1,"type":"invoke","f":"read","key":"y","value":null,"time":2}"#,
        r#"{"process":1,"type":"ok","f":"read","key":"y","value":1,"time":3}"#,
    ]
    .join("\n");
    let h = parse_history(&text).expect("parses");
    let report = lin::check_with(&h, &LinConfig { threads: 2, ..LinConfig::default() });
    assert_eq!(report.verdict.valid, Validity::Invalid);
    let anomaly = &report.verdict.anomalies[0];
    assert_eq!(anomaly.kind, "nonlinearizable");
    assert_eq!(anomaly.key.as_deref(), Some("y"));
    assert!(anomaly.explanation.contains("op 1 (process 1, read 1"), "{}", anomaly.explanation);
    assert!(anomaly.explanation.contains("line 3"), "{}", anomaly.explanation);
    let failure = report.failure.expect("a failure is described");
    let page = minikv_checker::html::render(&h, &failure, &anomaly.explanation);
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("failed-op"));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "no external assets");
}

#[test]
fn budget_exhaustion_is_unknown() {
    let w = RegisterWorkload { ops: 400, processes: 8, keys: 1, ..RegisterWorkload::default() };
    let mut text = generate(&w);
    text.push_str(
        "\n{\"process\":999,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k0\",\"value\":null,\"time\":1}",
    );
    let h = parse_history(&text).expect("parses");
    let config = LinConfig { max_steps_per_key: 0, ..LinConfig::default() };
    let v = lin::check_with(&h, &config).verdict;
    assert_ne!(v.valid, Validity::Invalid, "running out of budget is never a verdict");
}

fn parse_err(text: &str) -> ParseError {
    parse_history(text).expect_err("the history is malformed")
}

#[test]
fn parse_errors_name_line_and_field() {
    let invoke = r#"{"process":0,"type":"invoke","f":"read","value":null,"time":0}"#;
    let cases: Vec<(String, usize, Option<&str>)> = vec![
        (format!("{invoke}\n{{not json"), 2, None),
        (r#"{"type":"invoke","f":"read","time":0}"#.to_string(), 1, Some("process")),
        (r#"{"process":"a","type":"invoke","f":"read","time":0}"#.to_string(), 1, Some("process")),
        (r#"{"process":0,"type":"begin","f":"read","time":0}"#.to_string(), 1, Some("type")),
        (r#"{"process":0,"type":"invoke","f":"frob","time":0}"#.to_string(), 1, Some("f")),
        (r#"{"process":0,"type":"invoke","f":"read"}"#.to_string(), 1, Some("time")),
        (
            r#"{"process":0,"type":"invoke","f":"cas","value":3,"time":0}"#.to_string(),
            1,
            Some("value"),
        ),
        (r#"{"process":0,"type":"ok","f":"read","value":1,"time":0}"#.to_string(), 1, Some("type")),
        (format!("{invoke}\n\n{invoke}"), 3, Some("type")),
        (
            format!("{invoke}\n{}", r#"{"process":0,"type":"ok","f":"write","value":1,"time":1}"#),
            2,
            Some("f"),
        ),
    ];
    for (text, line, field) in cases {
        let e = parse_err(&text);
        assert_eq!(e.line(), Some(line), "{text:?}: {e}");
        assert_eq!(e.field(), field, "{text:?}: {e}");
        assert!(e.to_string().contains(&format!("line {line}")), "{e}");
    }
}

#[test]
fn parse_file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("minikv-lin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, "{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time\":0}\n")
        .expect("write");
    let e = minikv_checker::parse_file(&path).expect_err("completion without invoke");
    assert!(e.to_string().contains("bad.jsonl"), "{e}");
    assert_eq!(e.field(), Some("type"));
    let missing = minikv_checker::parse_file(dir.join("absent.jsonl")).expect_err("no such file");
    assert!(matches!(missing, ParseError::Io { .. }), "{missing}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn pairing_and_outcomes() {
    let text = [
        r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":0}"#,
        r#"{"process":1,"type":"invoke","f":"write","key":"x","value":2,"time":1}"#,
        r#"{"process":2,"type":"invoke","f":"read","key":"x","value":null,"time":2}"#,
        r#"{"process":0,"type":"info","f":"write","key":"x","value":1,"time":3}"#,
        r#"{"process":2,"type":"ok","f":"read","key":"x","value":2,"time":4}"#,
    ]
    .join("\n");
    let h = parse_history(&text).expect("parses");
    let outcomes: Vec<(Outcome, Option<i64>)> =
        h.ops.iter().map(|o| (o.outcome, o.complete_ns)).collect();
    assert_eq!(
        outcomes,
        vec![
            (Outcome::Indeterminate, None),
            (Outcome::Indeterminate, None),
            (Outcome::Ok, Some(4))
        ]
    );
    assert_eq!(h.ops[0].complete_line, Some(4));
    assert_eq!(h.ops[2].result, Some(serde_json::json!(2)));
}

/// Replaces the value of the `n`-th ok read (mod their number) with one no write produced.
fn mutate_one_read(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let reads: Vec<usize> =
        (0..lines.len()).filter(|&i| lines[i].contains(r#""type":"ok","f":"read""#)).collect();
    let target = *reads.get(n % reads.len().max(1))?;
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let line = &out[target];
    let at = line.find(r#""value":"#).expect("a read has a value") + r#""value":"#.len();
    let end = at + line[at..].find(',').expect("time follows value");
    out[target] = format!("{}-12345{}", &line[..at], &line[end..]);
    Some(out.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn generated_histories_pass_and_a_mutated_read_fails(
        seed in any::<u64>(),
        processes in 1u64..8,
        keys in 1u64..4,
        ops in 1usize..250,
        domain in prop::option::of(2u64..6),
        which in any::<usize>(),
    ) {
        let w = RegisterWorkload {
            seed, ops, processes, keys, value_domain: domain, crash_per_mille: 40,
            ..RegisterWorkload::default()
        };
        let text = generate(&w);
        let h = parse_history(&text).expect("generated histories parse");
        let v = lin::check(&h);
        prop_assert_eq!(v.valid, Validity::Valid, "seed {} workload {:?}: {:?}", seed, w, v.anomalies);
        if let Some(bad) = mutate_one_read(&text, which) {
            let h = parse_history(&bad).expect("mutated history parses");
            let v = lin::check(&h);
            prop_assert_eq!(v.valid, Validity::Invalid, "seed {} workload {:?}", seed, w);
        }
    }
}
