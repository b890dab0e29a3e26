//! Throughput of `checker::check` on synthetic valid histories.
//!
//! `cargo run --release -p checker --example bench -- [OPS]... [--check-only] [--save PATH]`
//! (default: 100000 1000000; `--check-only` skips the text round trip, for profiling;
//! `--save PATH` writes the last generated history there, to time the CLI on it)
//!
//! Generates, from a fixed seed, a valid history of about OPS events: producers sending
//! to several partitions with overlapping operations (mostly `ok`, some `info` that may
//! or may not land, some `fail`), transactional producers (committed transactions
//! visible at once, aborted ones leaving invisible records, markers leaving gaps),
//! assign-mode consumers polling contiguously and committing their offsets for a
//! group, a consume-transform-produce client (transactions that poll an input
//! partition, send outputs and commit input offsets), and a final drain. Then times
//! `check` (and, for reference, writing and re-reading the JSON Lines text). This is
//! the only place in the crate that reads the wall clock: a measuring tool, not a
//! test.

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
/// The last `logs` entry: the consume-transform-produce client's output partition.
const OUTPUT: usize = KEYS;
/// Its input partition.
const INPUT: usize = 0;
const PRODUCERS: usize = 12;
/// The first `TXN_PRODUCERS` producers send transactions.
const TXN_PRODUCERS: usize = 3;
const CONSUMERS: usize = 4;
/// Clients: producers, consumers, then the consume-transform-produce client.
const CLIENTS: usize = PRODUCERS + CONSUMERS + 1;
const EOS_CLIENT: usize = PRODUCERS + CONSUMERS;
const RECORDS_PER_POLL_MAX: usize = 16;
const SENDS_PER_TXN_MAX: u64 = 3;

/// What a client is doing between its invoke and its completion.
#[derive(Clone)]
enum InFlight {
    Idle,
    Send {
        key: usize,
        value: i64,
    },
    Txn {
        sends: Vec<(usize, i64)>,
    },
    Poll,
    Commit {
        offsets: Vec<(String, u64)>,
    },
    /// Consume-transform-produce: input records (index range into the input log)
    /// and one output value per record.
    Process {
        start: usize,
        end: usize,
        outputs: Vec<i64>,
    },
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
    /// The consume-transform-produce client's committed position in its input log.
    eos_position: usize,
    next_process: u64,
    next_value: i64,
}

impl Workload {
    fn new(seed: u64) -> Self {
        let clients = (0..CLIENTS)
            .map(|client| (client as u64, InFlight::Idle))
            .collect();
        Workload {
            rng: Rng(seed),
            ops: Vec::new(),
            time: 0,
            logs: vec![Vec::new(); KEYS + 1],
            next_offset: vec![0; KEYS + 1],
            clients,
            positions: vec![vec![0; KEYS]; CONSUMERS],
            eos_position: 0,
            next_process: CLIENTS as u64,
            next_value: 0,
        }
    }

    fn push(&mut self, typ: OpType, process: u64, f: F, value: OpValue) -> &mut Op {
        self.time += 1 + self.rng.below(1_000);
        let index = self.ops.len() as u64;
        self.ops
            .push(Op::new(index, self.time, typ, process, f, value));
        self.ops.last_mut().expect("just pushed")
    }

    fn key_name(key: usize) -> String {
        if key == OUTPUT {
            "output-0".to_owned()
        } else {
            format!("orders-{key}")
        }
    }

    fn fresh_value(&mut self) -> i64 {
        self.next_value += 1;
        self.next_value
    }

    /// The client continues under a new process id (after an `info`).
    fn renew(&mut self, client: usize) {
        self.clients[client].0 = self.next_process;
        self.next_process += 1;
    }

    fn step(&mut self) {
        let client = self.rng.below(self.clients.len() as u64) as usize;
        let (process, in_flight) = self.clients[client].clone();
        match in_flight {
            InFlight::Idle if client < TXN_PRODUCERS => self.invoke_txn(client, process),
            InFlight::Idle if client < PRODUCERS => {
                let key = self.rng.below(KEYS as u64) as usize;
                let value = self.fresh_value();
                let mop = Mop::send(Self::key_name(key), value);
                self.push(OpType::Invoke, process, F::Send, OpValue::Mops(vec![mop]));
                self.clients[client].1 = InFlight::Send { key, value };
            }
            InFlight::Idle if client == EOS_CLIENT => self.invoke_process(client, process),
            InFlight::Idle if self.rng.below(8) == 0 => self.invoke_commit(client, process),
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
            InFlight::Txn { sends } => self.complete_txn(client, process, &sends),
            InFlight::Poll => self.complete_poll(client, process),
            InFlight::Commit { offsets } => {
                let value = OpValue::Commit {
                    group: Self::group_of(client),
                    offsets,
                };
                self.push(OpType::Ok, process, F::Commit, value);
                self.clients[client].1 = InFlight::Idle;
            }
            InFlight::Process {
                start,
                end,
                outputs,
            } => self.complete_process(client, process, start..end, &outputs),
        }
    }

    fn invoke_txn(&mut self, client: usize, process: u64) {
        let count = 1 + self.rng.below(SENDS_PER_TXN_MAX) as usize;
        let sends: Vec<(usize, i64)> = (0..count)
            .map(|_| (self.rng.below(KEYS as u64) as usize, self.fresh_value()))
            .collect();
        let mops = sends
            .iter()
            .map(|&(key, value)| Mop::send(Self::key_name(key), value))
            .collect();
        self.push(OpType::Invoke, process, F::Txn, OpValue::Mops(mops));
        self.clients[client].1 = InFlight::Txn { sends };
    }

    /// Appends a transaction's records at commit (visible, contiguous per key) or
    /// abort (invisible), then one marker per key touched.
    fn append_txn(&mut self, sends: &[(usize, i64)], commits: bool) -> Vec<u64> {
        let mut offsets = Vec::with_capacity(sends.len());
        for &(key, value) in sends {
            let offset = self.next_offset[key];
            self.next_offset[key] += 1;
            if commits {
                self.logs[key].push((offset, value));
            }
            offsets.push(offset);
        }
        let mut touched: Vec<usize> = sends.iter().map(|&(key, _)| key).collect();
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            self.next_offset[key] += 1;
        }
        offsets
    }

    fn complete_txn(&mut self, client: usize, process: u64, sends: &[(usize, i64)]) {
        let roll = self.rng.below(100);
        let commits = roll < 90 || (96..98).contains(&roll);
        let offsets = self.append_txn(sends, commits);
        let typ = match roll {
            0..=89 => OpType::Ok,
            90..=95 => OpType::Fail,
            _ => {
                self.renew(client);
                OpType::Info
            }
        };
        let mops = sends
            .iter()
            .zip(offsets)
            .map(|(&(key, value), offset)| match typ {
                OpType::Ok => Mop::send_at(Self::key_name(key), offset, value),
                _ => Mop::send(Self::key_name(key), value),
            })
            .collect();
        self.push(typ, process, F::Txn, OpValue::Mops(mops));
        self.clients[client].1 = InFlight::Idle;
    }

    /// Each consumer commits for a group of its own (they all read every partition).
    fn group_of(client: usize) -> String {
        format!("bench-{}", client - PRODUCERS)
    }

    /// A consumer commits, for each key it read, the offset after its last record.
    fn invoke_commit(&mut self, client: usize, process: u64) {
        let consumer = client - PRODUCERS;
        let offsets: Vec<(String, u64)> = (0..KEYS)
            .filter(|&key| self.positions[consumer][key] > 0)
            .map(|key| {
                let (offset, _) = self.logs[key][self.positions[consumer][key] - 1];
                (Self::key_name(key), offset + 1)
            })
            .collect();
        let value = OpValue::Commit {
            group: Self::group_of(client),
            offsets: offsets.clone(),
        };
        self.push(OpType::Invoke, process, F::Commit, value);
        self.clients[client].1 = InFlight::Commit { offsets };
    }

    /// Consume-transform-produce: poll input records from the committed position and
    /// send one output for each.
    fn invoke_process(&mut self, client: usize, process: u64) {
        let start = self.eos_position;
        let end = (start + 1 + self.rng.below(4) as usize).min(self.logs[INPUT].len());
        let outputs: Vec<i64> = (start..end).map(|_| self.fresh_value()).collect();
        let mut mops = vec![Mop::poll()];
        mops.extend(
            outputs
                .iter()
                .map(|&value| Mop::send(Self::key_name(OUTPUT), value)),
        );
        self.push(OpType::Invoke, process, F::Txn, OpValue::Mops(mops));
        self.clients[client].1 = InFlight::Process {
            start,
            end,
            outputs,
        };
    }

    fn complete_process(
        &mut self,
        client: usize,
        process: u64,
        input: std::ops::Range<usize>,
        outputs: &[i64],
    ) {
        let commits = self.rng.below(16) != 0;
        let sends: Vec<(usize, i64)> = outputs.iter().map(|&value| (OUTPUT, value)).collect();
        let offsets = self.append_txn(&sends, commits);
        let records: Vec<(u64, Value)> = self.logs[INPUT][input.clone()]
            .iter()
            .map(|&(offset, value)| (offset, Value::Int(value)))
            .collect();
        let next = records
            .last()
            .map(|&(offset, _)| offset + 1)
            .unwrap_or_else(|| {
                // Nothing to read: commit where the input's committed position is.
                input
                    .start
                    .checked_sub(1)
                    .map(|last| self.logs[INPUT][last].0 + 1)
                    .unwrap_or(0)
            });
        let mut mops = vec![Mop::polled(vec![(Self::key_name(INPUT), records)])];
        mops.extend(sends.iter().zip(offsets).map(|(&(key, value), offset)| {
            if commits {
                Mop::send_at(Self::key_name(key), offset, value)
            } else {
                Mop::send(Self::key_name(key), value)
            }
        }));
        if commits {
            self.eos_position = input.end;
        }
        let typ = if commits { OpType::Ok } else { OpType::Fail };
        let op = self.push(typ, process, F::Txn, OpValue::Mops(mops));
        op.offsets = Some(vec![(Self::key_name(INPUT), next)]);
        op.group = Some("bench-eos".into());
        self.clients[client].1 = InFlight::Idle;
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
            self.renew(client);
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
                InFlight::Txn { sends } => self.complete_txn(client, process, &sends),
                InFlight::Poll => self.complete_poll(client, process),
                InFlight::Commit { offsets } => {
                    let value = OpValue::Commit {
                        group: Self::group_of(client),
                        offsets,
                    };
                    self.push(OpType::Ok, process, F::Commit, value);
                }
                InFlight::Process {
                    start,
                    end,
                    outputs,
                } => self.complete_process(client, process, start..end, &outputs),
            }
        }
        let process = self.next_process;
        let keys: Vec<String> = (0..=KEYS).map(Self::key_name).collect();
        self.push(
            OpType::Invoke,
            process,
            F::Assign,
            OpValue::Keys(keys.clone()),
        );
        self.push(OpType::Ok, process, F::Assign, OpValue::Keys(keys));
        for key in 0..=KEYS {
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
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let check_only = arguments.iter().any(|argument| argument == "--check-only");
    let save = arguments
        .iter()
        .position(|argument| argument == "--save")
        .and_then(|position| arguments.get(position + 1))
        .cloned();
    let targets: Vec<usize> = arguments
        .iter()
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
        if let Some(path) = &save {
            let written = std::fs::File::create(path)
                .and_then(|file| write_history(std::io::BufWriter::new(file), &ops));
            if let Err(error) = written {
                eprintln!("bench: cannot write {path}: {error}");
            }
        }
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
