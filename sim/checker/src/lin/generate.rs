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

impl RegisterWorkload {
    /// The dense shape the refutation work was measured on: 3,000 register ops from 40
    /// processes on 2 keys (~20 in flight per key), values from a domain of 5 (so that many
    /// orders reach the same states), a few crashes.
    pub fn dense_3k() -> RegisterWorkload {
        RegisterWorkload {
            seed: 7,
            ops: 3_000,
            processes: 40,
            keys: 2,
            value_domain: Some(5),
            crash_per_mille: 10,
            ..RegisterWorkload::default()
        }
    }
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

/// An impossible read to plant in a generated history (`plant_read`), for the tests and the
/// benchmark of refutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedRead {
    /// The last ok read returns a value no operation writes.
    NeverWritten,
    /// The last ok read returns a value that only a write invoked after the read completed
    /// (appended at the end of the history, by a new process) writes: the value exists, but
    /// too late.
    FromTheFuture,
    /// A new process, in the middle of the history, writes two fresh values one after the other
    /// and then reads the first back: the second write completed before the read began, and
    /// nothing else writes the first value again.
    Stale,
}

/// A value no generated operation writes (domains and unique values are non-negative).
const PLANTED_VALUE: i64 = -1;

/// Plants `plant` into `text` (a history from `generate`); the result is not linearizable.
/// Panics if the history has no ok read.
pub fn plant_read(text: &str, plant: PlantedRead) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let time_of = |line: &str| -> i64 {
        let at = line.rfind(r#""time":"#).expect("every line has a time") + r#""time":"#.len();
        line[at..].trim_end_matches('}').parse().expect("times are integers")
    };
    match plant {
        PlantedRead::NeverWritten | PlantedRead::FromTheFuture => {
            let read = lines
                .iter()
                .rposition(|l| l.contains(r#""type":"ok","f":"read""#))
                .expect("the history has an ok read");
            let at = lines[read].find(r#""value":"#).expect("a value") + r#""value":"#.len();
            let end = at + lines[read][at..].find(',').expect("time follows value");
            lines[read] = format!("{}{PLANTED_VALUE}{}", &lines[read][..at], &lines[read][end..]);
            if plant == PlantedRead::FromTheFuture {
                let key_at = lines[read].find(r#""key":"#).expect("a key");
                let key_end = key_at + lines[read][key_at..].find(',').expect("fields follow");
                let key = lines[read][key_at..key_end].to_string();
                let last = lines.iter().map(|l| time_of(l)).max().expect("lines");
                let p = FRESH_PROCESS;
                for (t, ty) in [(last + 1, "invoke"), (last + 2, "ok")] {
                    lines.push(format!(
                        r#"{{"process":{p},"type":"{ty}","f":"write",{key},"value":{PLANTED_VALUE},"time":{t}}}"#
                    ));
                }
            }
        }
        PlantedRead::Stale => {
            let p = FRESH_PROCESS;
            let event = |ty: &str, f: &str, v: &str, t: i64| {
                format!(
                    r#"{{"process":{p},"type":"{ty}","f":"{f}","key":"k0","value":{v},"time":{t}}}"#
                )
            };
            let (first, second) = (PLANTED_VALUE.to_string(), (PLANTED_VALUE - 1).to_string());
            // Three instants, strictly increasing (equal times count as concurrent), each an
            // invoke and its completion at once, placed where the file stays sorted by time.
            let mut t = time_of(&lines[lines.len() / 2]);
            for (f, v) in [("write", &first), ("write", &second), ("read", &first)] {
                let at = lines.iter().position(|l| time_of(l) > t).unwrap_or(lines.len());
                t = lines.get(at).map_or(t + 1, |l| time_of(l));
                let invoke_value = if f == "read" { "null" } else { v.as_str() };
                let pair = [event("invoke", f, invoke_value, t), event("ok", f, v, t)];
                lines.splice(at..at, pair);
            }
        }
    }
    lines.join("\n")
}

/// The process id of planted operations; generated ids stay far below it.
const FRESH_PROCESS: u64 = 1 << 40;
