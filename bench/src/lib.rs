//! minikv-bench: benchmark drivers; each binary is one `cargo xtask bench` target.
//!
//! This library holds what the binaries share: a tiny argument reader, rate formatting, the PD
//! benchmarks' timestamp-order check and percentiles, and the batch-throughput loop that drives any replicated log the same way, so two implementations are
//! compared through one loop shape.

use std::time::{Duration, Instant};

/// Reads `--name value` from the process arguments, or returns `default`.
///
/// Panics with the flag name when the value does not parse: a benchmark run with a typo in its
/// arguments must not silently measure something else.
pub fn arg_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    let flag = format!("--{name}");
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| *a == flag) {
        None => default,
        Some(i) => {
            let raw = args.get(i + 1).unwrap_or_else(|| panic!("{flag} needs a value"));
            raw.parse().unwrap_or_else(|_| panic!("{flag}: cannot parse {raw:?}"))
        }
    }
}

/// Reads `--name a,b,c` (unsigned integers) from the process arguments, or returns `default`.
/// Panics like [`arg_or`] on a value that does not parse, and on an empty list.
pub fn arg_list_or(name: &str, default: &[u64]) -> Vec<u64> {
    let raw: String = arg_or(name, String::new());
    if raw.is_empty() {
        return default.to_vec();
    }
    let list: Vec<u64> = raw
        .split(',')
        .map(|x| x.trim().parse().unwrap_or_else(|_| panic!("--{name}: cannot parse {x:?}")))
        .collect();
    assert!(!list.is_empty(), "--{name} needs at least one value");
    list
}

/// Checks one client's timestamps: `first` (the first of `count` consecutive ones) must lie
/// above `last`, the last one the client got before; returns the new last. Panics otherwise,
/// since a PD that hands out a timestamp twice or out of order is broken, not slow.
pub fn check_timestamps(client: u64, last: Option<u64>, first: u64, count: u32) -> u64 {
    assert!(count > 0, "client {client}: a batch of no timestamps");
    if let Some(last) = last {
        assert!(first > last, "client {client}: timestamp {first} after {last}: not increasing");
    }
    first.checked_add(u64::from(count) - 1).expect("timestamp overflow")
}

/// The `p`-th percentile (0 < p <= 100) of `sorted` (ascending), nearest rank; 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    assert!(p > 0.0 && p <= 100.0, "percentile {p} not in (0, 100]");
    assert!(sorted.is_sorted(), "percentile of an unsorted list");
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `count` events over `elapsed`, as whole events per second (0 when nothing was timed).
pub fn per_second(count: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 { 0 } else { (count as f64 / secs).round() as u64 }
}

/// `numerator / denominator` with two decimals, or "inf" when the denominator is zero.
pub fn ratio_2dp(numerator: u64, denominator: u64) -> String {
    if denominator == 0 {
        return "inf".to_string();
    }
    format!("{:.2}", numerator as f64 / denominator as f64)
}

/// CPU time this thread has run so far (Linux `/proc/thread-self/schedstat`), if available.
///
/// On a machine shared with other jobs, wall time also counts the time this thread waited for a
/// core; CPU time does not, so rates computed from it compare implementations more steadily.
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// A replicated log driven from one thread: propose on the leader, then pump messages and
/// Readies until the proposals are applied everywhere.
pub trait BatchCluster {
    /// Proposes one normal entry on the current leader; panics if the leader refuses it.
    fn propose(&mut self, payload: Vec<u8>);
    /// Handles every pending Ready and delivers every queued message, until nothing is pending.
    /// Returns false when there was nothing to do at all.
    fn pump(&mut self) -> bool;
    /// Number of proposed (non-empty) entries applied on every node.
    fn applied_on_all(&self) -> u64;
    /// Compacts every node's log up to what that node has applied (keeps memory flat over long runs).
    fn compact_applied(&mut self);
    /// Panics unless every node applied the same payloads (compared through a checksum).
    fn assert_replicas_agree(&self);
    /// Messages stepped into nodes so far (to compare how much protocol work each side does).
    fn messages_delivered(&self) -> u64;
}

/// What one timed run measured.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Entries proposed, committed and applied on every node during the timed run.
    pub entries: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// CPU time of the driving thread during the run, where the platform reports it.
    pub cpu: Option<Duration>,
    /// Messages delivered during the run.
    pub messages: u64,
}

impl Measurement {
    /// Entries per wall-clock second.
    pub fn entries_per_second(&self) -> u64 {
        per_second(self.entries, self.elapsed)
    }

    /// Entries per CPU second of the driving thread (0 if CPU time is unknown).
    pub fn entries_per_cpu_second(&self) -> u64 {
        self.cpu.map_or(0, |cpu| per_second(self.entries, cpu))
    }
}

/// Entries between two log compactions in [`run_batches`].
pub const COMPACT_INTERVAL_ENTRIES: u64 = 8192;

/// The maximum number of `pump` rounds one batch may take before the run is declared stalled.
pub const MAX_PUMP_ROUNDS_PER_BATCH: u64 = 10_000;

/// Proposes `total_entries` payloads of `payload_bytes` bytes in batches of `batch_entries`; after
/// each batch, pumps until the whole batch is applied on every node. Returns the entries and the
/// wall time. The payload carries a counter so that every proposal is distinct. Every
/// [`COMPACT_INTERVAL_ENTRIES`] entries the logs are compacted to the applied index.
pub fn run_batches<C: BatchCluster>(
    cluster: &mut C,
    total_entries: u64,
    batch_entries: u64,
    payload_bytes: usize,
) -> Measurement {
    assert!(batch_entries > 0, "batch_entries must be positive");
    assert!(payload_bytes >= 8, "payload must hold the 8-byte counter");
    let start_applied = cluster.applied_on_all();
    let start_messages = cluster.messages_delivered();
    let start_cpu = thread_cpu_time();
    let start = Instant::now();
    let mut proposed = 0u64;
    while proposed < total_entries {
        let batch = batch_entries.min(total_entries - proposed);
        for _ in 0..batch {
            let mut payload = vec![0xa5u8; payload_bytes];
            payload[..8].copy_from_slice(&(start_applied + proposed).to_le_bytes());
            cluster.propose(payload);
            proposed += 1;
        }
        let target = start_applied + proposed;
        let mut rounds = 0u64;
        while cluster.applied_on_all() < target {
            let moved = cluster.pump();
            rounds += 1;
            assert!(
                moved && rounds <= MAX_PUMP_ROUNDS_PER_BATCH,
                "stalled: applied on all {} < target {target} after {rounds} rounds",
                cluster.applied_on_all()
            );
        }
        if proposed / COMPACT_INTERVAL_ENTRIES != (proposed - batch) / COMPACT_INTERVAL_ENTRIES {
            cluster.compact_applied();
        }
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_time().zip(start_cpu).map(|(end, begin)| end.saturating_sub(begin));
    cluster.assert_replicas_agree();
    let messages = cluster.messages_delivered() - start_messages;
    Measurement { entries: cluster.applied_on_all() - start_applied, elapsed, cpu, messages }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_ratios_format_as_the_last_line_needs() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000);
        assert_eq!(per_second(1, Duration::ZERO), 0);
        assert_eq!(ratio_2dp(3, 2), "1.50");
        assert_eq!(ratio_2dp(2, 3), "0.67");
        assert_eq!(ratio_2dp(1, 0), "inf");
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&[7], 1.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn timestamps_must_lie_above_the_last_batch() {
        let last = check_timestamps(0, None, 10, 4);
        assert_eq!(last, 13);
        assert_eq!(check_timestamps(0, Some(last), 14, 1), 14);
    }

    #[test]
    #[should_panic(expected = "not increasing")]
    fn a_timestamp_inside_the_last_batch_panics() {
        check_timestamps(3, Some(13), 13, 1);
    }
}
