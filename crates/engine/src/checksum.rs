//! The engine's own checksum: XXH64, written from the published algorithm.
//!
//! Why our own and why this one: redb verifies its page checksums only while it repairs a
//! file after an unclean shutdown (see the crate docs), so the engine seals every disk sector
//! with a checksum of its own ([`crate::disk::integrity`]). It runs on every sector that
//! crosses the disk boundary, so it must be fast (XXH64 runs at several GB/s in safe Rust,
//! where a table-driven CRC32C manages about one), wide (64 bits: a silent flip goes unnoticed
//! with probability 2^-64, not 2^-32), and dependency-free (about fifty lines, no `unsafe`,
//! nothing added to the workspace). It is not cryptographic: it defends against a failing
//! disk, not an adversary.

const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME_5: u64 = 0x27D4_EB2F_1656_67C5;

/// Bytes consumed per round of the four-lane main loop.
const STRIPE_BYTES: usize = 32;

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
}

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(PRIME_2)).rotate_left(31).wrapping_mul(PRIME_1)
}

fn merge_round(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane)).wrapping_mul(PRIME_1).wrapping_add(PRIME_4)
}

/// XXH64 of `data` with `seed`.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut hash = if data.len() >= STRIPE_BYTES {
        let mut lanes = [
            seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
            seed.wrapping_add(PRIME_2),
            seed,
            seed.wrapping_sub(PRIME_1),
        ];
        let stripes = data.chunks_exact(STRIPE_BYTES);
        rest = stripes.remainder();
        for stripe in stripes {
            // Fixed-size reads of a fixed-size stripe: no bounds checks in the hot loop.
            let stripe: &[u8; STRIPE_BYTES] = stripe.try_into().expect("an exact chunk");
            for (lane, word) in lanes.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, u64::from_le_bytes(word.try_into().expect("8 bytes")));
            }
        }
        let mut acc = lanes[0]
            .rotate_left(1)
            .wrapping_add(lanes[1].rotate_left(7))
            .wrapping_add(lanes[2].rotate_left(12))
            .wrapping_add(lanes[3].rotate_left(18));
        for lane in lanes {
            acc = merge_round(acc, lane);
        }
        acc
    } else {
        seed.wrapping_add(PRIME_5)
    };
    hash = hash.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        hash ^= round(0, read_u64(rest));
        hash = hash.rotate_left(27).wrapping_mul(PRIME_1).wrapping_add(PRIME_4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        hash ^= u64::from(read_u32(rest)).wrapping_mul(PRIME_1);
        hash = hash.rotate_left(23).wrapping_mul(PRIME_2).wrapping_add(PRIME_3);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash ^= u64::from(byte).wrapping_mul(PRIME_5);
        hash = hash.rotate_left(11).wrapping_mul(PRIME_1);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(PRIME_2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(PRIME_3);
    hash ^= hash >> 32;
    hash
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
