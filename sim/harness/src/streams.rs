//! The run's seeded random streams: one ChaCha8 stream per fault task and per client, each
//! on the run's seed as its key and its own label's hash as its stream id, so no two of them,
//! in this run or any other, are the same stream (seed 2's partitions once drew exactly seed
//! 1's clogs: the streams were `seed ^ constant ^ index`).

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// The stream named `label` (e.g. `nemesis/p0/partition`) of the run with `seed`.
pub fn stream(seed: u64, label: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(xxhash_rust::xxh64::xxh64(label.as_bytes(), 0));
    rng
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand_core::RngCore;

    use super::stream;

    fn first_words(seed: u64, label: &str) -> [u64; 4] {
        let mut rng = stream(seed, label);
        [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()]
    }

    #[test]
    fn streams_differ_across_seeds_phases_and_kinds() {
        let kinds = ["partition", "clog", "loss", "latency", "kill", "pause", "clock", "disk"];
        let mut seen = BTreeMap::new();
        for seed in 0..64 {
            for phase in 0..3 {
                for kind in kinds {
                    let label = format!("nemesis/p{phase}/{kind}");
                    if let Some(other) =
                        seen.insert(first_words(seed, &label), (seed, label.clone()))
                    {
                        panic!("seed {seed} {label} draws the same stream as {other:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_stream_is_a_function_of_seed_and_label() {
        assert_eq!(first_words(7, "client/p0/register/3"), first_words(7, "client/p0/register/3"));
    }
}
