//! Verdicts and anomalies, shared by every checker and printed by `minikv-check --json`.

use serde::Serialize;

/// A checker's answer. `Unknown` is returned when a budget runs out, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Validity {
    Valid,
    Invalid,
    Unknown,
}

/// One anomaly with its witnesses and a sentence a person can follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// Anomaly class: "nonlinearizable", "G0", "G1a", "G1b", "G1c", "G-single", "G-nonadjacent",
    /// "G2-item", their "-realtime"/"-process" variants, "internal", "duplicate-elements",
    /// "incompatible-order", "garbage-read", "lost-update", "dirty-update", "bank-sum", ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The key, for per-key anomalies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Witness operations (`Op::id`), for transactional anomalies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub txns: Vec<usize>,
    pub explanation: String,
}

/// The result of one checker over one history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub valid: Validity,
    pub anomalies: Vec<Anomaly>,
}
