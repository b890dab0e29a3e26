//! The broker as pure, deterministic state machines: no I/O, no clock, no threads, no
//! randomness of its own. Every node has the same surface (`handle_message`,
//! `handle_timeout`, `handle_disk`, effects into an [`outbox::Outbox`]) so the simulator
//! drives all of them with one loop, and a real event loop could drive them too.

pub mod broker;
pub mod bug;
pub mod client;
pub mod config;
pub mod controller;
pub mod history;
pub mod log;
pub mod message;
pub mod outbox;
pub mod producer_state;
pub mod rng;
pub mod txn_index;
pub mod types;
