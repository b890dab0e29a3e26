//! The client side of Kafka's classic consumer group protocol: what the group leader
//! computes between JoinGroup and SyncGroup. The coordinator only relays the members'
//! subscriptions to the leader and the leader's assignment back; the partition assignment
//! itself is client code, a `ConsumerPartitionAssignor` chosen by
//! `partition.assignment.strategy`. Pure functions here, so the leader's state machine
//! (and the tests) call them without any I/O.

pub mod assignor;

pub use assignor::{assign, Assignor, AssignorFaults, MemberSubscription};
