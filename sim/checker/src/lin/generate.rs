//! Seeded generator of register histories that are linearizable by construction, for the
//! property tests and the benchmark.
//!
//! Processes invoke operations on random keys; each operation takes effect on a real register
//! at a random step inside its interval, then completes with what it observed. Some operations
//! crash (`info`, or no completion at all) after or before taking effect.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The shape of a generated history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterWorkload {
    pub seed: u64,
    /// Operations invoked in all.
    pub ops: usize,
    pub processes: u64,
    pub keys: u64,
    /// Percent of reads and of writes; the rest are cas.
    pub read_percent: u32,
    pub write_percent: u32,
    /// Values written come from `0..domain` (`None`: every write is unique).
    pub value_domain: Option<u64>,
    /// Per mille of operations that crash (complete with `info`, or never).
    pub crash_per_mille: u32,
}

impl Default for RegisterWorkload {
    fn default() -> Self {
        RegisterWorkload {
            seed: 0,
            ops: 1000,
            processes: 5,
            keys: 3,
            read_percent: 50,
            write_percent: 30,
            value_domain: Some(5),
            crash_per_mille: 10,
        }
    }
}

#[derive(Clone)]
enum Phase {
    Idle,
    /// Invoked, not yet applied.
    Pending(PendingOp),
    /// Applied; holds the completion line to print.
    Applied {
        completion: String,
    },
}

#[derive(Clone)]
struct PendingOp {
    key: u64,
    kind: u32,
    value: i64,
    old: i64,
}

const READ: u32 = 0;
const WRITE: u32 = 1;
const CAS: u32 = 2;

fn json_value(v: Option<i64>) -> String {
    v.map_or("null".to_string(), |v| v.to_string())
}

/// Generates the history as JSON lines.
pub fn generate(w: &RegisterWorkload) -> String {
    assert!(w.processes > 0 && w.keys > 0, "a workload needs processes and keys: {w:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed);
    let mut below = |n: u64| rng.next_u64() % n;
    let mut registers: BTreeMap<u64, i64> = BTreeMap::new();
    let mut phases = vec![Phase::Idle; w.processes as usize];
    // The process id each slot runs as; a slot whose process crashed silently takes a fresh id.
    let mut ids: Vec<u64> = (0..w.processes).collect();
    let mut next_id = w.processes;
    let mut out = String::with_capacity(w.ops * 140);
    let mut invoked = 0usize;
    let mut next_unique = 0i64;
    let mut time_ns = 0i64;
    let key_name = |k: u64| format!("k{k}");
    while invoked < w.ops || phases.iter().any(|p| !matches!(p, Phase::Idle)) {
        time_ns += 1 + below(9) as i64;
        let slot = below(w.processes) as usize;
        let p = ids[slot];
        let phase = &mut phases[slot];
        match phase.clone() {
            Phase::Idle if invoked >= w.ops => {}
            Phase::Idle => {
                invoked += 1;
                let key = below(w.keys);
                let roll = below(100) as u32;
                let kind = if roll < w.read_percent {
                    READ
                } else if roll < w.read_percent + w.write_percent {
                    WRITE
                } else {
                    CAS
                };
                let mut fresh = |below: &mut dyn FnMut(u64) -> u64| match w.value_domain {
                    Some(d) => below(d) as i64,
                    None => {
                        next_unique += 1;
                        next_unique
                    }
                };
                let value = fresh(&mut below);
                // A cas usually compares against the current value, so that many succeed.
                let current = registers.get(&key).copied().filter(|&c| c != i64::MIN);
                let old = match current {
                    Some(c) if below(2) == 0 => c,
                    _ => fresh(&mut below),
                };
                let (f, v) = match kind {
                    READ => ("read", "null".to_string()),
                    WRITE => ("write", value.to_string()),
                    _ => ("cas", format!("[{old},{value}]")),
                };
                let _ = writeln!(
                    out,
                    r#"{{"process":{p},"type":"invoke","f":"{f}","key":"{}","value":{v},"time":{time_ns}}}"#,
                    key_name(key)
                );
                *phase = Phase::Pending(PendingOp { key, kind, value, old });
            }
            Phase::Pending(op) => {
                if below(1000) < u64::from(w.crash_per_mille) / 2 {
                    // Crashes before taking effect: info, or silence forever.
                    if below(2) == 0 {
                        print_info(&mut out, p, &op, time_ns, &key_name);
                    } else {
                        // The process is gone, its operation open forever; a fresh one takes
                        // over the slot, as in Jepsen.
                        ids[slot] = next_id;
                        next_id += 1;
                    }
                    *phase = Phase::Idle;
                    continue;
                }
                let reg = registers.entry(op.key).or_insert(i64::MIN);
                let current = (*reg != i64::MIN).then_some(*reg);
                let key = key_name(op.key);
                let completion = match op.kind {
                    READ => format!(
                        r#"{{"process":{p},"type":"ok","f":"read","key":"{key}","value":{}"#,
                        json_value(current)
                    ),
                    WRITE => {
                        *reg = op.value;
                        format!(
                            r#"{{"process":{p},"type":"ok","f":"write","key":"{key}","value":{}"#,
                            op.value
                        )
                    }
                    _ => {
                        let swapped = current == Some(op.old);
                        if swapped {
                            *reg = op.value;
                        }
                        let t = if swapped { "ok" } else { "fail" };
                        format!(
                            r#"{{"process":{p},"type":"{t}","f":"cas","key":"{key}","value":[{},{}]"#,
                            op.old, op.value
                        )
                    }
                };
                if below(1000) < u64::from(w.crash_per_mille) / 2 && op.kind != READ {
                    // Took effect, then crashed.
                    print_info(&mut out, p, &op, time_ns, &key_name);
                    *phase = Phase::Idle;
                } else {
                    *phase = Phase::Applied { completion };
                }
            }
            Phase::Applied { completion } => {
                let _ = writeln!(out, r#"{completion},"time":{time_ns}}}"#);
                *phase = Phase::Idle;
            }
        }
    }
    out
}

fn print_info(
    out: &mut String,
    p: u64,
    op: &PendingOp,
    time_ns: i64,
    key_name: &dyn Fn(u64) -> String,
) {
    let (f, v) = match op.kind {
        READ => ("read", "null".to_string()),
        WRITE => ("write", op.value.to_string()),
        _ => ("cas", format!("[{},{}]", op.old, op.value)),
    };
    let _ = writeln!(
        out,
        r#"{{"process":{p},"type":"info","f":"{f}","key":"{}","value":{v},"time":{time_ns}}}"#,
        key_name(op.key)
    );
}
