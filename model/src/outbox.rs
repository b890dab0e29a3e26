//! What a node asks the world to do. A handler never performs I/O: it pushes effects
//! here and the simulator (or, one day, a real event loop) carries them out.
//!
//! Durability order is part of the API (the raft-rs `Ready` lesson): a node that needs
//! data on disk asks for an [`DiskOp::Fsync`] and acts on the matching
//! [`DiskCompletion`], never before.

use crate::history::HistoryEvent;
use crate::message::Message;
use crate::types::{BrokerId, Epoch, NodeId, Offset, PartitionId, SimTime};

/// Timers a node can set. The world delivers each back to the node that set it
/// (unless that node crashed in between); nodes ignore timers that no longer apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Broker: send the next BrokerHeartbeat.
    BrokerHeartbeat,
    /// Broker (leader): check followers' lag against `replica.lag.time.max.ms`.
    IsrCheck,
    /// Broker (follower): fetch again for this partition (after a backoff).
    ReplicaFetch(PartitionId),
    /// Broker (follower): has the request in flight for this partition been
    /// unanswered for `replica.socket.timeout.ms`? (One armed per partition.)
    ReplicaTimeout(PartitionId),
    /// Broker: periodic write-back of dirty pages (or `log.flush.interval.ms`).
    Flush,
    /// Broker (leader): complete delayed produce requests whose timeout expired (one
    /// timer armed for the earliest deadline).
    ProduceTimeouts,
    /// Broker (leader): answer parked fetches whose wait is over (`fetch.max.wait.ms`,
    /// `replica.fetch.wait.max.ms`); one timer armed for the earliest.
    FetchWaits,
    /// Broker (transaction coordinator): abort timed-out transactions, resend markers.
    TxnTick,
    /// Broker (group coordinator): the earliest group deadline (a member's session
    /// time-out, the end of a join phase or of the initial rebalance delay) is due;
    /// one timer armed for the earliest.
    GroupTick,
    /// Controller: look for brokers whose session expired.
    SessionCheck,
    /// Client: workload tick (next send / next poll).
    Workload,
    /// Producer: `linger.ms` of the oldest open batch expired (one timer armed).
    Linger,
    /// Client: a request with this correlation id timed out (`request.timeout.ms`).
    RequestTimeout(u64),
    /// Client: retry after `retry.backoff.ms`.
    Retry,
    /// Client (group member): send the next Heartbeat (`heartbeat.interval.ms`).
    Heartbeat,
    /// Client (group member): `auto.commit.interval.ms` elapsed.
    AutoCommit,
    /// Client (group member): the application finished processing its batch.
    Processed,
    /// Producer: time out every request in flight longer than `request.timeout.ms`
    /// (one timer armed for the earliest deadline).
    RequestTimeouts,
}

/// A disk operation; completions come back through `handle_disk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskOp {
    /// Make everything written so far durable; completes after the disk's fsync latency.
    Fsync { token: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskCompletion {
    Fsynced { token: u64 },
}

/// Facts a node reports for the run's summary, report and broker monitors: the
/// observable moments of the protocol (an election, an ISR change, a truncation, an
/// acknowledgement) that clients cannot see directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Controller: a leader was elected (`leader` None = offline partition).
    LeaderElected {
        partition: PartitionId,
        leader: Option<BrokerId>,
        epoch: Epoch,
        isr: Vec<BrokerId>,
        unclean: bool,
    },
    /// Controller: the ISR changed through AlterPartition or fencing.
    IsrChanged {
        partition: PartitionId,
        isr: Vec<BrokerId>,
        shrink: bool,
    },
    /// Controller: a broker was fenced (session expired) or unfenced.
    BrokerFenced { broker: BrokerId, fenced: bool },
    /// Broker: a replica truncated its log from `from` down to `to`.
    Truncated {
        partition: PartitionId,
        from: Offset,
        to: Offset,
    },
    /// Broker (leader): a produce was refused for want of in-sync replicas
    /// (NOT_ENOUGH_REPLICAS): the partition is unavailable for writes.
    ProduceRefused { partition: PartitionId },
    /// Broker (leader): an idempotent batch was not appended because of its sequence
    /// number: a retry already in the log (answered with its offset), or a batch out of
    /// sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
    SequenceChecked {
        partition: PartitionId,
        duplicate: bool,
    },
    /// Broker (leader): an `acks=all` produce was acknowledged with this ISR size.
    AckedAll {
        partition: PartitionId,
        isr_size: u32,
        offset_end: Offset,
    },
}

/// The effects of one handler call.
#[derive(Debug, Default)]
pub struct Outbox {
    pub messages: Vec<(NodeId, Message)>,
    /// (delay from now, timer).
    pub timers: Vec<(SimTime, Timer)>,
    pub disk: Vec<DiskOp>,
    pub history: Vec<HistoryEvent>,
    pub notes: Vec<Note>,
}

impl Outbox {
    pub fn send(&mut self, to: NodeId, msg: Message) {
        self.messages.push((to, msg));
    }

    pub fn timer_ms(&mut self, delay_ms: u64, timer: Timer) {
        self.timers.push((SimTime::from_ms(delay_ms), timer));
    }

    pub fn timer(&mut self, delay: SimTime, timer: Timer) {
        self.timers.push((delay, timer));
    }

    pub fn note(&mut self, note: Note) {
        self.notes.push(note);
    }

    pub fn record(&mut self, event: HistoryEvent) {
        self.history.push(event);
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.timers.is_empty()
            && self.disk.is_empty()
            && self.history.is_empty()
            && self.notes.is_empty()
    }

    pub fn clear(&mut self) {
        self.messages.clear();
        self.timers.clear();
        self.disk.clear();
        self.history.clear();
        self.notes.clear();
    }
}
