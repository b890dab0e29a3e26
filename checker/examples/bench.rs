//! Throughput of `checker::check` on synthetic valid histories.
//!
//! `cargo run --release -p checker --example bench -- [OPS]... [--check-only]`
//! (default: 100000 1000000; `--check-only` skips the text round trip, for profiling)
//!
//! Generates, from a fixed seed, a valid history of about OPS events: producers sending
//! to several partitions with overlapping operations (mostly `ok`, some `info` that may
//! or may not land, some `fail`), assign-mode consumers polling contiguously, and a
//! final drain. Then times `check` (and, for reference, writing and re-reading the
//! JSON Lines text). This is the only place in the crate that reads the wall clock: a
//! measuring tool, not a test.

use std::time::Instant;

use checker::{check, read_history, write_history, Mop, Op, OpType, OpValue, Policy, Value, F};

/// SplitMix64: a tiny deterministic generator, so the bench history is the same
/// on every machine and every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const KEYS: usize = 8;
const PRODUCERS: usize = 12;
const CONSUMERS: usize = 4;
const RECORDS_PER_POLL_MAX: usize = 16;

/// What a client is doing between its invoke and its completion.
#[derive(Clone)]
enum InFlight {
    Idle,
    Send { key: usize, value: i64 },
    Poll,
}

struct Workload {
    rng: Rng,
    ops: Vec<Op>,
    time: u64,
    logs: Vec<Vec<(u64, i64)>>,
    next_offset: Vec<u64>,
    /// Process id and in-flight operation of each client (producers, then consumers).
    clients: Vec<(u64, InFlight)>,
    /// Per consumer and key: index of the next record to read.
    positions: Vec<Vec<usize>>,
    next_process: u64,
    next_value: i64,
}

impl Workload {
    fn new(seed: u64) -> Self {
        let clients = (0..PRODUCERS + CONSUMERS)
            .map(|client| (client as u64, InFlight::Idle))
            .collect();
        Workload {
            rng: Rng(seed),
            ops: Vec::new(),
            time: 0,
            logs: vec![Vec::new(); KEYS],
            next_offset: vec![0; KEYS],
            clients,
            positions: vec![vec![0; KEYS]; CONSUMERS],
            next_process: (PRODUCERS + CONSUMERS) as u64,
            next_value: 0,
        }
    }

    fn push(&mut self, typ: OpType, process: u64, f: F, value: OpValue) {
        self.time += 1 + self.rng.below(1_000);
        let index = self.ops.len() as u64;
        self.ops
            .push(Op::new(index, self.time, typ, process, f, value));
    }

    fn key_name(key: usize) -> String {
        format!("orders-{key}")
    }

    fn step(&mut self) {
        let client = self.rng.below(self.clients.len() as u64) as usize;
        let (process, in_flight) = self.clients[client].clone();
        match in_flight {
            InFlight::Idle if client < PRODUCERS => {
                let key = self.rng.below(KEYS as u64) as usize;
                let value = self.next_value;
                self.next_value += 1;
                let mop = Mop::send(Self::key_name(key), value);
                self.push(OpType::Invoke, process, F::Send, OpValue::Mops(vec![mop]));
                self.clients[client].1 = InFlight::Send { key, value };
            }
            InFlight::Idle => {
                self.push(
                    OpType::Invoke,
                    process,
                    F::Poll,
                    OpValue::Mops(vec![Mop::poll()]),
                );
                self.clients[client].1 = InFlight::Poll;
            }
            InFlight::Send { key, value } => self.complete_send(client, process, key, value),
            InFlight::Poll => self.complete_poll(client, process),
        }
    }

    fn append(&mut self, key: usize, value: i64) -> u64 {
        // One in 16 appends follows a transaction marker: a gap in the offsets.
        if self.rng.below(16) == 0 {
            self.next_offset[key] += 1;
        }
        let offset = self.next_offset[key];
        self.next_offset[key] += 1;
        self.logs[key].push((offset, value));
        offset
    }

    fn complete_send(&mut self, client: usize, process: u64, key: usize, value: i64) {
        let name = Self::key_name(key);
        let roll = self.rng.below(100);
        let (typ, mop) = if roll < 94 {
            let offset = self.append(key, value);
            (OpType::Ok, Mop::send_at(name, offset, value))
        } else if roll < 97 {
            if roll < 96 {
                self.append(key, value);
            }
            self.clients[client].0 = self.next_process;
            self.next_process += 1;
            (OpType::Info, Mop::send(name, value))
        } else {
            (OpType::Fail, Mop::send(name, value))
        };
        self.push(typ, process, F::Send, OpValue::Mops(vec![mop]));
        self.clients[client].1 = InFlight::Idle;
    }

    fn complete_poll(&mut self, client: usize, process: u64) {
        let consumer = client - PRODUCERS;
        let mut reads = Vec::new();
        for key in 0..KEYS {
            let start = self.positions[consumer][key];
            let end = (start + RECORDS_PER_POLL_MAX).min(self.logs[key].len());
            if end > start {
                let records = self.logs[key][start..end]
                    .iter()
                    .map(|&(offset, value)| (offset, Value::Int(value)))
                    .collect();
                reads.push((Self::key_name(key), records));
                self.positions[consumer][key] = end;
            }
        }
        self.push(
            OpType::Ok,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::polled(reads)]),
        );
        self.clients[client].1 = InFlight::Idle;
    }

    /// Completes what is in flight, then one fresh consumer reads everything.
    fn drain(&mut self) {
        for client in 0..self.clients.len() {
            let (process, in_flight) = self.clients[client].clone();
            match in_flight {
                InFlight::Idle => {}
                InFlight::Send { key, value } => self.complete_send(client, process, key, value),
                InFlight::Poll => self.complete_poll(client, process),
            }
        }
        let process = self.next_process;
        let keys: Vec<String> = (0..KEYS).map(Self::key_name).collect();
        self.push(
            OpType::Invoke,
            process,
            F::Assign,
            OpValue::Keys(keys.clone()),
        );
        self.push(OpType::Ok, process, F::Assign, OpValue::Keys(keys));
        for key in 0..KEYS {
            for chunk in self.logs[key].clone().chunks(1_000) {
                let records = chunk
                    .iter()
                    .map(|&(offset, value)| (offset, Value::Int(value)))
                    .collect();
                self.push(
                    OpType::Invoke,
                    process,
                    F::Poll,
                    OpValue::Mops(vec![Mop::poll()]),
                );
                let reads = vec![(Self::key_name(key), records)];
                self.push(
                    OpType::Ok,
                    process,
                    F::Poll,
                    OpValue::Mops(vec![Mop::polled(reads)]),
                );
            }
        }
    }
}

fn generate(ops_target: usize) -> Vec<Op> {
    let mut workload = Workload::new(0x5eed);
    while workload.ops.len() < ops_target {
        workload.step();
    }
    workload.drain();
    workload.ops
}

/// CPU time this thread has run, in seconds, from Linux's `/proc/thread-self/schedstat`
/// (nanoseconds on CPU). On a shared machine wall time also counts the time other
/// processes held the cores; CPU time does not. `None` where unavailable.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 / 1e9)
}

fn per_second(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        f64::INFINITY
    }
}

fn main() {
    let check_only = std::env::args().any(|argument| argument == "--check-only");
    let targets: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|argument| argument.parse().ok())
        .collect();
    let targets = if targets.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        targets
    };
    let epoch = Instant::now();
    for target in targets {
        let ops = generate(target);
        let records: usize = ops
            .iter()
            .flat_map(|op| op.mops())
            .map(|mop| match mop {
                Mop::Poll { reads: Some(reads) } => reads.iter().map(|(_, r)| r.len()).sum(),
                _ => 1,
            })
            .sum();
        let mut best = f64::INFINITY;
        let mut best_cpu = f64::INFINITY;
        let mut anomalies = 0;
        for _ in 0..5 {
            let cpu_started = thread_cpu_seconds();
            let started = Instant::now();
            let report = check(&ops, &Policy::default());
            best = best.min(started.elapsed().as_secs_f64());
            if let (Some(before), Some(after)) = (cpu_started, thread_cpu_seconds()) {
                best_cpu = best_cpu.min(after - before);
            }
            anomalies = report.anomalies.len();
        }
        let cpu = if best_cpu.is_finite() {
            format!(
                " [CPU time {:.1} ms = {:.2} M ops/s]",
                best_cpu * 1e3,
                per_second(ops.len(), best_cpu) / 1e6
            )
        } else {
            String::new()
        };
        if check_only {
            println!(
                "{} ops: check {:.1} ms = {:.2} M ops/s (best of 5){cpu}, {} anomalies",
                ops.len(),
                best * 1e3,
                per_second(ops.len(), best) / 1e6,
                anomalies
            );
            continue;
        }
        // Text round trip, timed by CPU time when available (wall time otherwise).
        let timer = || thread_cpu_seconds().unwrap_or_else(|| epoch.elapsed().as_secs_f64());
        let started = timer();
        let mut text = Vec::with_capacity(ops.len() * 120);
        let written = write_history(&mut text, &ops);
        let write_seconds = timer() - started;
        let started = timer();
        let read = read_history(text.as_slice());
        let read_seconds = timer() - started;
        println!(
            "{} ops ({} micro-ops and poll records): check {:.1} ms = {:.2} M ops/s (best of 5){cpu}, {} anomalies; write {:.2} M ops/s, read+validate {:.2} M ops/s ({} MB){}",
            ops.len(),
            records,
            best * 1e3,
            per_second(ops.len(), best) / 1e6,
            anomalies,
            per_second(ops.len(), write_seconds) / 1e6,
            per_second(ops.len(), read_seconds) / 1e6,
            text.len() / 1_000_000,
            match (written, read) {
                (Ok(()), Ok(read)) if read == ops => "",
                _ => "  [round trip FAILED]",
            }
        );
    }
}
