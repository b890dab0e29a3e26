//! A group member's heartbeat thread, as far as the member kinds share it.

use crate::message::Message;
use crate::outbox::{Outbox, Timer};
use crate::types::{BrokerId, NodeId};

/// A group member's heartbeat thread: one `Timer::Heartbeat` armed at a time, and one
/// Heartbeat in flight at a time (its correlation and the coordinator it went to).
/// When it beats is the member's business.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Heartbeats {
    armed: bool,
    inflight: Option<(u64, BrokerId)>,
}

impl Heartbeats {
    /// Tick again after `interval_ms` (`heartbeat.interval.ms`), unless a tick is armed.
    pub fn arm(&mut self, interval_ms: u64, out: &mut Outbox) {
        if !self.armed {
            self.armed = true;
            out.timer_ms(interval_ms, Timer::Heartbeat);
        }
    }

    /// The armed tick fired: the next one needs arming.
    pub fn fired(&mut self) {
        self.armed = false;
    }

    pub fn is_inflight(&self) -> bool {
        self.inflight.is_some()
    }

    /// Send `beat` (a Heartbeat whose correlation id is `correlation`) to the
    /// coordinator `to`, and time it out after `timeout_ms`.
    pub fn send(
        &mut self,
        correlation: u64,
        to: BrokerId,
        beat: Message,
        timeout_ms: u64,
        out: &mut Outbox,
    ) {
        self.inflight = Some((correlation, to));
        out.send(NodeId::Broker(to), beat);
        out.timer_ms(timeout_ms, Timer::RequestTimeout(correlation));
    }

    /// Is `correlation` the Heartbeat in flight?
    pub fn awaits(&self, correlation: u64) -> bool {
        self.inflight.is_some_and(|(c, _)| c == correlation)
    }

    /// Did the Heartbeat in flight go to `broker`?
    pub fn sent_to(&self, broker: BrokerId) -> bool {
        self.inflight.is_some_and(|(_, b)| b == broker)
    }

    /// The Heartbeat in flight was answered, failed or is given up.
    pub fn done(&mut self) {
        self.inflight = None;
    }
}
