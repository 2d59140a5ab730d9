//! Deterministic "randomness": every choice the model makes is bits of a
//! 64-bit hash of (station, purpose, index), so the same question always gets
//! the same answer, on any replica and in any release.

// Noise positions are f64 hours since 1970: knot indices fit an i64 by far.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

/// What a hash is drawn for; keeps the streams of "random" numbers apart.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub(super) enum Purpose {
    Low = 1,
    LowDetail = 2,
    Anomaly = 3,
    AnomalyDetail = 4,
    RainWet = 5,
    RainStart = 6,
    RainLength = 7,
    RainAmount = 8,
}

/// Smooth value noise in [-1, 1]: a hashed value at every multiple of
/// `period` hours, blended with smoothstep in between.
pub(super) fn smooth_noise(seed: u64, purpose: Purpose, hours: f64, period: f64) -> f64 {
    let position = hours / period;
    let knot = position.floor();
    let fraction = position - knot;
    let knot = knot as i64;
    let before = signed_unit(hash(seed, purpose, knot));
    let after = signed_unit(hash(seed, purpose, knot + 1));
    let blend = fraction * fraction * (3.0 - 2.0 * fraction);
    before + (after - before) * blend
}

/// A well-mixed 64-bit hash of (station, purpose, index): SplitMix64's
/// finaliser, which is fixed forever, unlike std's hasher.
pub(super) fn hash(seed: u64, purpose: Purpose, index: i64) -> u64 {
    #[allow(clippy::cast_sign_loss)] // Bits, not a quantity.
    let index = index as u64;
    splitmix64(seed ^ splitmix64((purpose as u64) << 56 ^ index))
}

fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits as a number in [0, 1).
pub(super) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

fn signed_unit(bits: u64) -> f64 {
    2.0 * unit(bits) - 1.0
}

/// FNV-1a: a stable seed per station id.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
