//! The requests of a client's current step, in flight.

use crate::message::Message;
use crate::outbox::{Outbox, Timer};
use crate::types::{BrokerId, NodeId, PartitionId};
use std::collections::BTreeMap;

/// The requests of a client's current step in flight: correlation -> the broker each
/// went to (a closed connection fails those) and its partition (none for a request to
/// a coordinator).
#[derive(Clone, Debug, Default)]
pub(super) struct Requests(BTreeMap<u64, (BrokerId, Option<PartitionId>)>);

impl Requests {
    /// Send `msg` (whose correlation id is `correlation`) to `to`, and time it out after
    /// `timeout_ms`.
    pub fn send(
        &mut self,
        correlation: u64,
        to: BrokerId,
        partition: Option<PartitionId>,
        msg: Message,
        timeout_ms: u64,
        out: &mut Outbox,
    ) {
        self.0.insert(correlation, (to, partition));
        out.send(NodeId::Broker(to), msg);
        out.timer_ms(timeout_ms, Timer::RequestTimeout(correlation));
    }

    /// No longer wait for `correlation`: the partition of the request, if it was one of
    /// them.
    pub fn remove(&mut self, correlation: u64) -> Option<Option<PartitionId>> {
        self.0.remove(&correlation).map(|(_, p)| p)
    }

    /// The requests that went to `broker`, as (correlation, partition).
    pub fn sent_to(&self, broker: BrokerId) -> Vec<(u64, Option<PartitionId>)> {
        self.0
            .iter()
            .filter(|(_, (b, _))| *b == broker)
            .map(|(&c, &(_, p))| (c, p))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}
