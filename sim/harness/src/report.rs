//! The report of one run: verdict, op counts, faults, checks, trace hash; its JSON form is the
//! stable interface of `cargo xtask sim --json` and of every sweep line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// A check found a violation.
    Fail,
    /// After the faults healed, the workload did not finish within the bound.
    Liveness,
    /// The store or the harness panicked.
    Crash,
    /// Two runs of the same scenario and seed differed (a sweep's recheck).
    Nondeterministic,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Liveness => "liveness",
            Verdict::Crash => "crash",
            Verdict::Nondeterministic => "nondeterministic",
        }
    }

    /// The process exit code: 0 pass, 1 anything else.
    pub fn exit_code(self) -> u8 {
        u8::from(self != Verdict::Pass)
    }
}

/// Client operations by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub valid: bool,
    pub ms: u64,
    /// Why it failed (absent when valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The report printed last by `cargo xtask sim --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub verdict: Verdict,
    /// Simulated milliseconds the run took.
    pub sim_ms: u64,
    /// Wall-clock milliseconds (the only field that differs between identical runs).
    pub wall_ms: u64,
    pub ops: OpCounts,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    pub checks: BTreeMap<String, CheckResult>,
    /// XXH64 of the trace (16 hex digits): equal for every run of the same scenario and seed.
    pub trace_hash: String,
    /// Parameters the seed picked where the scenario left them open (swarm testing).
    pub swarm: BTreeMap<String, String>,
    /// Why the verdict is not `pass` (the first failing check, the liveness miss or the panic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The planted bugs switched on (canary runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canaries: Vec<String>,
    /// The BUGGIFY points enabled for the run, with how often each fired.
    #[serde(default)]
    pub buggify: BTreeMap<String, u64>,
    /// The code probes hit, with how often.
    #[serde(default)]
    pub probes: BTreeMap<String, u64>,
    /// The placement driver's counters (leader changes), when the run has PD nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pd: BTreeMap<String, u64>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// A few human lines (printed before the JSON, or alone without `--json`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} seed {}: {} in {} simulated ms ({} ms wall); ops {} invoked, {} ok, {} fail, {} info\n",
            self.scenario,
            self.seed,
            self.verdict.name().to_uppercase(),
            self.sim_ms,
            self.wall_ms,
            self.ops.invoked,
            self.ops.ok,
            self.ops.fail,
            self.ops.info
        );
        if !self.faults.is_empty() {
            let f: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!("faults: {}\n", f.join(", ")));
        }
        if !self.canaries.is_empty() {
            s.push_str(&format!("canary (planted bug): {}\n", self.canaries.join(", ")));
        }
        if !self.buggify.is_empty() {
            let f: Vec<String> = self.buggify.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!("buggify (enabled points, times fired): {}\n", f.join(", ")));
        }
        if !self.probes.is_empty() {
            let f: Vec<String> = self.probes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!("probes hit: {}\n", f.join(", ")));
        }
        if !self.pd.is_empty() {
            let f: Vec<String> = self.pd.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!("pd: {}\n", f.join(", ")));
        }
        if !self.swarm.is_empty() {
            let f: Vec<String> = self.swarm.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("swarm picked: {}\n", f.join(", ")));
        }
        for (name, c) in &self.checks {
            let state = if c.valid { "ok" } else { "FAILED" };
            s.push_str(&format!("check {name}: {state} ({} ms)", c.ms));
            if let Some(d) = &c.detail {
                s.push_str(&format!(": {d}"));
            }
            s.push('\n');
        }
        if let Some(m) = &self.message {
            s.push_str(&format!("why: {m}\n"));
        }
        s.push_str(&format!("trace hash {}", self.trace_hash));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_fields_in_order() {
        let mut checks = BTreeMap::new();
        checks.insert("linearizable".to_string(), CheckResult { valid: true, ms: 3, detail: None });
        let r = Report {
            scenario: "partitions".into(),
            seed: 7,
            verdict: Verdict::Liveness,
            sim_ms: 1200,
            wall_ms: 40,
            ops: OpCounts { invoked: 10, ok: 7, fail: 2, info: 1 },
            faults: BTreeMap::from([("partition".to_string(), 4)]),
            checks,
            trace_hash: "00000000000000ff".into(),
            swarm: BTreeMap::new(),
            message: None,
            canaries: Vec::new(),
            buggify: BTreeMap::from([("raft-split-append".to_string(), 2)]),
            probes: BTreeMap::from([("store-log-compacted".to_string(), 1)]),
            pd: BTreeMap::new(),
        };
        let json = r.to_json();
        assert_eq!(
            json,
            r#"{"scenario":"partitions","seed":7,"verdict":"liveness","sim_ms":1200,"wall_ms":40,"ops":{"invoked":10,"ok":7,"fail":2,"info":1},"faults":{"partition":4},"checks":{"linearizable":{"valid":true,"ms":3}},"trace_hash":"00000000000000ff","swarm":{},"buggify":{"raft-split-append":2},"probes":{"store-log-compacted":1}}"#
        );
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.verdict.exit_code(), 1);
        assert!(r.summary().contains("LIVENESS"));
    }
}
