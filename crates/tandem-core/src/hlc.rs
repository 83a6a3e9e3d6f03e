//! Hybrid logical clock. Each event carries one, so that events from different regions can be
//! ordered causally even when wall clocks disagree. The clock does no IO: the caller passes
//! the wall-clock reading in.

use serde::{Deserialize, Serialize};

/// 48 bits of milliseconds since the Unix epoch, 16 bits of logical counter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Hlc(pub u64);

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

impl Hlc {
    pub fn new(wall_ms: u64, logical: u16) -> Hlc {
        Hlc((wall_ms << LOGICAL_BITS) | logical as u64)
    }
    pub fn wall_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The next timestamp after `last` given a wall-clock reading: never goes backwards,
    /// follows the wall clock when it moves ahead, and counts logically while it does not.
    pub fn tick(last: Hlc, wall_ms: u64) -> Hlc {
        if wall_ms > last.wall_ms() {
            Hlc::new(wall_ms, 0)
        } else if last.logical() < u16::MAX {
            Hlc(last.0 + 1)
        } else {
            // The logical counter is exhausted within one millisecond: borrow the next one.
            Hlc::new(last.wall_ms() + 1, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_monotonic_even_when_the_wall_clock_goes_back() {
        let mut h = Hlc::new(1000, 0);
        for wall in [1000, 999, 5, 1000, 1001, 1001, 2000, 10] {
            let next = Hlc::tick(h, wall);
            assert!(next > h, "{next:?} after {h:?}");
            assert!(next.wall_ms() >= wall.min(next.wall_ms()));
            h = next;
        }
        assert_eq!(Hlc::tick(Hlc::new(7, u16::MAX), 7), Hlc::new(8, 0));
    }
}
