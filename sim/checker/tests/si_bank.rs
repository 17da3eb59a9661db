//! The bank invariant: reads of all accounts must sum to the total.

use minikv_checker::bank::check_bank;
use minikv_checker::parse::parse_history;
use minikv_checker::report::Validity;

fn history(lines: &[&str]) -> minikv_checker::history::History {
    let text: Vec<String> =
        lines.iter().enumerate().map(|(i, l)| l.replace("TIME", &(10 * i).to_string())).collect();
    parse_history(&text.join("\n")).expect("test history parses")
}

const TRANSFER_THEN_READ: [&str; 4] = [
    r#"{"process":0,"type":"invoke","f":"txn","value":[["r","a",null],["r","b",null],["w","a",40],["w","b",60]],"time":TIME}"#,
    r#"{"process":0,"type":"ok","f":"txn","value":[["r","a",50],["r","b",50],["w","a",40],["w","b",60]],"time":TIME}"#,
    r#"{"process":1,"type":"invoke","f":"txn","value":[["r","a",null],["r","b",null]],"time":TIME}"#,
    r#"{"process":1,"type":"ok","f":"txn","value":[["r","a",40],["r","b",60]],"time":TIME}"#,
];

#[test]
fn consistent_reads_pass() {
    let v = check_bank(&history(&TRANSFER_THEN_READ), 100);
    assert_eq!(v.valid, Validity::Valid, "{:?}", v.anomalies);
}

#[test]
fn a_read_mid_transfer_fails() {
    let mut lines = TRANSFER_THEN_READ.to_vec();
    lines[3] =
        r#"{"process":1,"type":"ok","f":"txn","value":[["r","a",40],["r","b",50]],"time":TIME}"#;
    let v = check_bank(&history(&lines), 100);
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomalies.len(), 1);
    assert_eq!(v.anomalies[0].kind, "bank-sum");
    assert_eq!(v.anomalies[0].txns, [1]);
    assert!(
        v.anomalies[0].explanation.contains("{a=40, b=50}, which sums to 90, not the total 100")
    );
}

#[test]
fn jepsen_shaped_map_reads_are_checked() {
    let ok = history(&[
        r#"{"process":0,"type":"invoke","f":"read","value":null,"time":TIME}"#,
        r#"{"process":0,"type":"ok","f":"read","value":{"a":30,"b":70},"time":TIME}"#,
    ]);
    assert_eq!(check_bank(&ok, 100).valid, Validity::Valid);
    let bad = history(&[
        r#"{"process":0,"type":"invoke","f":"read","value":null,"time":TIME}"#,
        r#"{"process":0,"type":"ok","f":"read","value":{"a":30,"b":"x"},"time":TIME}"#,
    ]);
    let v = check_bank(&bad, 100);
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomalies[0].kind, "bank-bad-balance");
}
