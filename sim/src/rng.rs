//! The world's randomness: one seed, split into named ChaCha8 streams, so one more draw
//! in one stream (say, the network) never reshuffles another (say, the faults).
//! Integer-only API (ratios, not floats), as TigerBeetle's PRNG wrapper.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The streams of a run; each has its own ChaCha stream id.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Network = 1,
    Disk = 2,
    Faults = 3,
    /// Per-client streams start here (`Client + client index`).
    Client = 16,
}

pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    pub fn new(seed: u64, stream: u64) -> SimRng {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        SimRng { inner }
    }

    pub fn stream(seed: u64, stream: Stream) -> SimRng {
        SimRng::new(seed, stream as u64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `0..n` without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.inner.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        num > 0 && self.below(den) < num
    }
}

impl scenarios::Draw for SimRng {
    fn below(&mut self, n: u64) -> u64 {
        SimRng::below(self, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a: Vec<u64> = (0..4)
            .map(|_| SimRng::stream(1, Stream::Network).next_u64())
            .collect();
        assert!(
            a.windows(2).all(|w| w[0] == w[1]),
            "same seed and stream, same draws"
        );
        let mut net = SimRng::stream(1, Stream::Network);
        let mut faults = SimRng::stream(1, Stream::Faults);
        assert_ne!(net.next_u64(), faults.next_u64());
        assert_ne!(
            SimRng::stream(1, Stream::Disk).next_u64(),
            SimRng::stream(2, Stream::Disk).next_u64()
        );
    }
}
