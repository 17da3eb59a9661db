//! Porcupine's etcd and key-value histories (converted to our format) against Porcupine's
//! own verdicts in `EXPECTED`.

use std::path::PathBuf;

use minikv_checker::lin;
use minikv_checker::parse_file;
use minikv_checker::report::Validity;

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/histories/porcupine");
    assert!(
        dir.join("EXPECTED").is_file(),
        "the Porcupine corpus is missing: expected {}/EXPECTED (the shared/ directory beside \
         the repository root)",
        dir.display()
    );
    dir
}

/// (file name, expected linearizable) from EXPECTED.
fn expected() -> Vec<(String, bool)> {
    let dir = corpus_dir();
    let text = std::fs::read_to_string(dir.join("EXPECTED")).expect("EXPECTED is readable");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().expect("a file name").to_string();
            let verdict = match parts.next() {
                Some("true") => true,
                Some("false") => false,
                other => panic!("EXPECTED line {l:?}: verdict {other:?} is not true/false"),
            };
            (name, verdict)
        })
        .collect()
}

#[test]
fn every_porcupine_verdict_matches() {
    let dir = corpus_dir();
    let cases = expected();
    assert_eq!(cases.len(), 108, "EXPECTED lists 102 etcd and 6 kv histories");
    let mut mismatches = Vec::new();
    for (name, linearizable) in &cases {
        let history = parse_file(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let verdict = lin::check(&history);
        let want = if *linearizable { Validity::Valid } else { Validity::Invalid };
        if verdict.valid != want {
            mismatches.push(format!("{name}: expected {want:?}, got {:?}", verdict.valid));
        }
        if want == Validity::Invalid {
            assert!(
                verdict.anomalies.iter().all(|a| a.kind == "nonlinearizable"),
                "{name}: anomalies {:?}",
                verdict.anomalies
            );
        }
    }
    assert!(mismatches.is_empty(), "verdicts differ from Porcupine's:\n{}", mismatches.join("\n"));
}
