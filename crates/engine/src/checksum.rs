//! The engine's checksum: XXH64 (the `xxhash-rust` crate's).
//!
//! Why this one: redb verifies its page checksums only while it repairs a file after an
//! unclean shutdown (see the crate docs), so the engine seals every disk sector with a checksum
//! of its own ([`crate::disk::integrity`]), and the log's records and the superblock carry one
//! too. It runs on every sector that crosses the disk boundary, so it must be fast (XXH64 runs
//! at several GB/s), wide (64 bits: a silent flip goes unnoticed with probability 2^-64, not
//! 2^-32), and stable: it is part of the disk format, so the reference vectors below pin it. It
//! is not cryptographic: it defends against a failing disk, not an adversary.

/// XXH64 of `data` with `seed`.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(data, seed)
}

#[cfg(test)]
mod tests {
    use super::xxh64;

    #[test]
    fn matches_reference_vectors() {
        // Published XXH64 values (seed 0) for short and multi-stripe inputs.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(xxh64(b"Nobody inspects the spammish repetition", 0), 0xFBCE_A83C_8A37_8BF1);
        // Many stripes and a tail (values from the reference implementation, python-xxhash).
        let sector: Vec<u8> = (0..4088u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(xxh64(&sector, 5), 0xD3F2_CF0E_10AE_E9CD);
        let odd: Vec<u8> = (0..1000u32).map(|i| (i * 13 + 1) as u8).collect();
        assert_eq!(xxh64(&odd, 0), 0x09F7_65A3_B879_90D7);
    }

    #[test]
    fn seed_and_every_single_bit_flip_change_the_hash() {
        let data: Vec<u8> = (0..4088u32).map(|i| (i * 7 + 3) as u8).collect();
        let base = xxh64(&data, 5);
        assert_ne!(base, xxh64(&data, 6));
        let mut flipped = data.clone();
        for bit in (0..data.len() * 8).step_by(61) {
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(xxh64(&flipped, 5), base, "flip of bit {bit} went unnoticed");
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
    }
}
