//! The deterministic discrete-event simulator that drives the `model` crate's state
//! machines over a fake clock, network and disk, records the history, checks it with the
//! `checker` library and the broker monitors, and reports.

pub mod cli;
pub mod group_stats;
pub mod instance;
pub mod monitors;
pub mod mutation;
pub mod network;
pub mod output;
pub mod queue;
pub mod recorder;
pub mod report;
pub mod rng;
pub mod run;
pub mod shrink;
pub mod sweep;
pub mod world;
