//! A small, fast pseudo-random generator (SplitMix64) for address and MAC picks.
//!
//! Picks need to be spread evenly, not unpredictable: an attacker gains nothing from guessing the
//! next pod address. A dependency-free generator keeps the crate pure and lets tests and benches
//! seed it for reproducible runs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// SplitMix64 (Steele, Lea, Flood 2014): passes BigCrush, one add and three multiplies a draw.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Seeded from the process's random hash keys, which std draws from the OS.
    pub(crate) fn from_entropy() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x6b75_6265_2d6f_766e);
        Self::seeded(hasher.finish())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (`n > 0`), without modulo bias.
    pub(crate) fn below(&mut self, n: u128) -> u128 {
        if n == 0 {
            return 0;
        }
        if let Ok(n64) = u64::try_from(n) {
            // Lemire's multiply-and-reject; the division is only needed on the rare near-miss.
            let mut m = u128::from(self.next_u64()) * u128::from(n64);
            if (m as u64) < n64 {
                let threshold = n64.wrapping_neg() % n64;
                while (m as u64) < threshold {
                    m = u128::from(self.next_u64()) * u128::from(n64);
                }
            }
            return m >> 64;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let r = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
            if r >= threshold {
                return r % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_bounds_and_covers_the_range() {
        let mut rng = Rng::seeded(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let v = rng.below(10);
            assert!(v < 10);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        let big = (1u128 << 100) + 3;
        for _ in 0..1000 {
            assert!(rng.below(big) < big);
        }
        assert_eq!(rng.below(1), 0);
    }
}
