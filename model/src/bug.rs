//! Reintroduced historical bugs (`--bug NAME`, `../shared/design/bugs.md`). Each switch
//! turns one fixed behaviour back into the broken one; the safe configuration stays.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// Truncate to the local high watermark instead of asking the leader (pre KIP-101).
    HwTruncation,
    /// `acks=all` succeeds with an ISR smaller than `min.insync.replicas` (pre KAFKA-1555).
    IgnoreMinIsr,
    /// Fetch and OffsetsForLeaderEpoch carry no current leader epoch (pre KIP-320).
    UnfencedFetch,
    /// The leader shrinks its ISR on its own, without the controller's approval.
    LocalIsrShrink,
}

/// Name, source and one-line description of every switch, in `--list-bugs` order.
pub const ALL_BUGS: &[(Bug, &str, &str, &str)] = &[
    (
        Bug::HwTruncation,
        "hw-truncation",
        "KIP-101",
        "on becoming follower or restart, truncate to the local high watermark instead of the leader's end offset for the last epoch",
    ),
    (
        Bug::IgnoreMinIsr,
        "ignore-min-isr",
        "KAFKA-1555",
        "acks=all is acknowledged with an ISR of just the leader although min.insync.replicas=2",
    ),
    (
        Bug::UnfencedFetch,
        "unfenced-fetch",
        "KIP-320",
        "fetch and end-offset requests carry no current leader epoch; a follower that missed an epoch change keeps fetching without truncating",
    ),
    (
        Bug::LocalIsrShrink,
        "local-isr-shrink",
        "KIP-497",
        "the leader shrinks the ISR on its own, without the controller's approval (split brain under partition)",
    ),
];

impl Bug {
    pub fn name(self) -> &'static str {
        ALL_BUGS
            .iter()
            .find(|(b, ..)| *b == self)
            .map(|(_, n, ..)| *n)
            .expect("every bug is listed")
    }

    pub fn parse(name: &str) -> Option<Bug> {
        ALL_BUGS
            .iter()
            .find(|(_, n, ..)| *n == name)
            .map(|(b, ..)| *b)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (bug, name, ..) in ALL_BUGS {
            assert_eq!(Bug::parse(name), Some(*bug));
            assert_eq!(bug.name(), *name);
        }
        assert_eq!(Bug::parse("no-such-bug"), None);
    }
}
