//! An application instance the world runs in a slot: a consume-transform-produce
//! instance (transactions) or a subscribe-mode group consumer. Slots are what the
//! nemesis names (crash, stall, close, slow batch); a slot's instance is replaced by a
//! new one with a new client id and process id.

use model::client::group_consumer::GroupConsumer;
use model::client::txn_app::TxnApp;
use model::message::Message;
use model::outbox::{Outbox, Timer};
use model::types::{ClientId, NodeId, SimTime};

pub enum Instance {
    Txn(TxnApp),
    Member(GroupConsumer),
}

impl Instance {
    pub fn id(&self) -> ClientId {
        match self {
            Instance::Txn(a) => a.id,
            Instance::Member(m) => m.id,
        }
    }

    pub fn start(&mut self, now: SimTime, out: &mut Outbox) {
        match self {
            Instance::Txn(a) => a.start(now, out),
            Instance::Member(m) => m.start(now, out),
        }
    }

    pub fn handle_message(&mut self, now: SimTime, from: NodeId, msg: Message, out: &mut Outbox) {
        match self {
            Instance::Txn(a) => a.handle_message(now, from, msg, out),
            Instance::Member(m) => m.handle_message(now, from, msg, out),
        }
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        match self {
            Instance::Txn(a) => a.handle_timeout(now, timer, out),
            Instance::Member(m) => m.handle_timeout(now, timer, out),
        }
    }

    /// The process dies at `now`: what it has open completes (`info`, or a group
    /// member's batch `ok` with the records it had processed).
    pub fn crash(&mut self, now: SimTime, out: &mut Outbox) {
        match self {
            Instance::Txn(a) => a.crash(out),
            Instance::Member(m) => m.crash(now, out),
        }
    }

    /// The run ends: open operations complete `info` (a group member records no crash).
    pub fn abandon(&mut self, out: &mut Outbox) {
        match self {
            Instance::Txn(a) => a.crash(out),
            Instance::Member(m) => m.abandon(false, out),
        }
    }

    /// Producers stop: a transactional instance finishes its transaction and stops; a
    /// group member goes on consuming until the run ends.
    pub fn stop(&mut self) {
        if let Instance::Txn(a) = self {
            a.stop();
        }
    }

    /// Nothing open that the run must wait for.
    pub fn is_idle(&self) -> bool {
        match self {
            Instance::Txn(a) => a.is_idle(),
            Instance::Member(m) => m.is_idle(),
        }
    }

    pub fn txn(&self) -> Option<&TxnApp> {
        match self {
            Instance::Txn(a) => Some(a),
            Instance::Member(_) => None,
        }
    }

    pub fn member(&self) -> Option<&GroupConsumer> {
        match self {
            Instance::Member(m) => Some(m),
            Instance::Txn(_) => None,
        }
    }
}
