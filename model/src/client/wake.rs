//! The one armed `Timer::Workload` wake-up of a client's loop.

use crate::outbox::{Outbox, Timer};
use crate::types::SimTime;

/// When the armed Workload timer fires: a client asks to run again after a delay from
/// many places, and one timer due no later than asked (and not yet fired) is enough.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WakeUp {
    at: Option<SimTime>,
}

impl WakeUp {
    /// Run again `delay_ms` after `now`, unless an armed wake-up comes first.
    pub fn arm(&mut self, now: SimTime, delay_ms: u64, out: &mut Outbox) {
        let at = now.plus_ms(delay_ms);
        if self.at.is_some_and(|t| t <= at && t >= now) {
            return;
        }
        self.at = Some(at);
        out.timer_ms(delay_ms, Timer::Workload);
    }

    /// A Workload timer fired at `now`: the armed wake-up is spent if it was due.
    pub fn fired(&mut self, now: SimTime) {
        if self.at.is_some_and(|t| t <= now) {
            self.at = None;
        }
    }

    /// Forget the armed wake-up, due or not (the group consumer does so at any Workload
    /// timer).
    pub fn forget(&mut self) {
        self.at = None;
    }
}
