//! The `sim` binary (contract: `design/cli.md`): one seed, a sweep of seeds, the
//! mutation score of the bug switches, or the lists of scenarios and bug switches.
//!
//! Exit codes: 0 every run held every invariant; 1 an anomaly, a panic inside a run, or
//! a determinism mismatch; 2 bad usage or input, reported as one `sim: <problem>` line.
//! Human text goes to stderr; stdout carries only the lists and the `--json` line, so
//! scripts can take stdout's last line as the result. This file (and the sweep) are the
//! only places that read the wall clock, for `wall_ms` and seeds/s.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use sim::cli::{self, CliError, Command, MutationCommand, RunCommand, SweepCommand, ALL_SCENARIOS};
use sim::mutation;
use sim::output;
use sim::report;
use sim::run::{self, GroupSummary, RunOptions, RunResult};
use sim::shrink::{self, ReplayFile};
use sim::sweep::{self, Outcome, Progress};

fn main() -> ExitCode {
    match cli::parse(std::env::args_os()) {
        Ok(Command::List { scenarios, bugs }) => list(scenarios, bugs),
        Ok(Command::Run(command)) => one_run(&command),
        Ok(Command::Sweep(command)) => sweep_seeds(&command),
        Ok(Command::MutationScore(command)) => mutation_score(&command),
        Err(CliError::Display(help)) => {
            // --help / --version: clap's text on stdout, success.
            let _ = help.print();
            ExitCode::SUCCESS
        }
        Err(CliError::Usage(line)) => usage_error(&line),
    }
}

/// Exit 2 with the one-line problem.
fn usage_error(line: &str) -> ExitCode {
    to_stderr(&format!("sim: {line}\n"));
    ExitCode::from(2)
}

fn verdict(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Write to stdout, ignoring a closed pipe (`sim --list-scenarios | head -1` must not
/// panic the way `println!` would).
fn to_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn to_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Names padded to one column, then the other fields, two spaces apart.
fn list(scenarios: bool, bugs: bool) -> ExitCode {
    let mut out = String::new();
    if scenarios {
        let rows = run::scenario_list();
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, description) in rows {
            out.push_str(&format!("{name:<width$}  {description}\n"));
        }
    }
    if bugs {
        let rows = run::bug_list();
        let name_width = rows
            .iter()
            .map(|(name, _, _)| name.len())
            .max()
            .unwrap_or(0);
        let source_width = rows
            .iter()
            .map(|(_, source, _)| source.len())
            .max()
            .unwrap_or(0);
        for (name, source, description) in rows {
            out.push_str(&format!(
                "{name:<name_width$}  {source:<source_width$}  {description}\n"
            ));
        }
    }
    to_stdout(&out);
    ExitCode::SUCCESS
}

/// Read a replay file; any problem is bad input (exit 2).
fn load_replay(path: &Path) -> Result<ReplayFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read replay file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a replay file: {e}", path.display()))
}

/// `--seed N` (or `--replay FILE`): run, write the requested files, summarize, exit
/// 0/1 (2 on bad input). With `--shrink`, minimize instead.
fn one_run(command: &RunCommand) -> ExitCode {
    let mut command = command.clone();
    let mut plan = None;
    if let Some(path) = &command.replay {
        let file = match load_replay(path) {
            Ok(file) => file,
            Err(problem) => return usage_error(&problem),
        };
        command.scenario = file.scenario.clone();
        command.seed = file.seed;
        command.common.bugs = file.bugs.clone();
        command.common.sets = file.sets.clone();
        plan = Some(file.plan);
    }
    let command = &command;
    let common = &command.common;
    let opts = RunOptions {
        scenario: command.scenario.clone(),
        seed: command.seed,
        bugs: common.bugs.clone(),
        sets: common.sets.clone(),
        // Histories and traces can be large: keep them only when a file asks for them.
        keep_history: command.history.is_some(),
        keep_trace: command.trace.is_some(),
        plan,
    };
    if let Some(to) = &command.shrink {
        return shrink_run(&opts, to.as_deref());
    }
    sweep::install_panic_capture();
    let started = Instant::now();
    let outcome = sweep::run_checked(&opts, common.check_determinism);
    let wall_ms = output::millis(started.elapsed());
    let mut result = match outcome {
        Err(setup) => return usage_error(&setup.to_string()),
        Ok(Outcome::Panicked {
            message,
            nondeterminism,
        }) => {
            let mut summary = output::panic_summary(
                &command.scenario,
                command.seed,
                common,
                &message,
                nondeterminism.is_some(),
            );
            if let Some(difference) = nondeterminism {
                summary.push_str(&format!("nondeterminism: {difference}\n"));
            }
            if command.history.is_some() || command.trace.is_some() || command.report.is_some() {
                summary.push_str("no files written: the run panicked before producing a result\n");
            }
            to_stderr(&summary);
            if common.json {
                to_stdout(&format!(
                    "{}\n",
                    output::panic_run_json(
                        &command.scenario,
                        command.seed,
                        &common.bugs,
                        &message,
                        wall_ms
                    )
                ));
            }
            return verdict(false);
        }
        Ok(Outcome::Done(result)) => result,
    };
    // A forbidden anomaly fails the run whatever the run's own flag says.
    result.ok = result.ok && result.anomalies.iter().all(|anomaly| anomaly.allowed);

    // A consumer group run's report ends with the same seed under both protocols.
    let comparison = match command.report {
        Some(_) => match run::protocol_comparison(&opts) {
            Ok(c) => c,
            Err(setup) => return usage_error(&setup.to_string()),
        },
        None => None,
    };
    if let Err(problem) = write_outputs(command, &result, comparison.as_ref()) {
        return usage_error(&problem);
    }

    let summary = output::run_summary(&result, common, wall_ms, command.replay.as_deref());
    to_stderr(&summary);
    if common.json {
        to_stdout(&format!("{}\n", output::run_json(&result, wall_ms)));
    }
    verdict(result.ok)
}

/// How many runs `--shrink` may try.
const SHRINK_BUDGET: usize = 300;

/// `--shrink`: minimize a failing run, write its replay file, say how much smaller it got.
fn shrink_run(opts: &RunOptions, to: Option<&Path>) -> ExitCode {
    sweep::install_panic_capture();
    let started = Instant::now();
    let shrunk = match shrink::shrink(opts, SHRINK_BUDGET) {
        Err(setup) => return usage_error(&setup.to_string()),
        Ok(None) => {
            to_stderr(&format!(
                "seed {} of {} does not fail: nothing to shrink\n",
                opts.seed, opts.scenario
            ));
            return ExitCode::SUCCESS;
        }
        Ok(Some(shrunk)) => shrunk,
    };
    let default_path = format!("shrunk-{}-{}.json", opts.scenario, opts.seed);
    let path = to
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_path.into());
    let file = ReplayFile::from_options(&shrunk.options).expect("a shrunk run has a plan");
    let json = serde_json::to_string_pretty(&file).expect("a replay file serializes");
    if let Err(problem) = write_file(&path, "replay", |w| w.write_all(json.as_bytes())) {
        return usage_error(&problem);
    }
    let (o, s) = (shrunk.original, shrunk.shrunk);
    let pct = |a: u64, b: u64| (100 * b).checked_div(a).map_or(0, |share| 100 - share);
    to_stderr(&format!(
        "shrunk {} seed {} keeping `{}` ({} runs, {:.1} s wall):\n  faults      {} -> {}\n  operations  {} -> {} ({}% fewer)\n  sim time    {} ms -> {} ms\n  events      {} -> {} ({}% fewer)\nwrote {}\nreplay: cargo run --release -p sim -- --replay {} --trace trace.txt\n",
        opts.scenario,
        opts.seed,
        shrunk.kind,
        shrunk.runs,
        started.elapsed().as_secs_f64(),
        o.faults,
        s.faults,
        o.operations,
        s.operations,
        pct(o.operations, s.operations),
        o.sim_time_ms,
        s.sim_time_ms,
        o.events,
        s.events,
        pct(o.events, s.events),
        path.display(),
        path.display()
    ));
    // The shrunk run still fails: that is the point, and the exit code says so.
    ExitCode::from(1)
}

/// Write the files asked for; an unwritable path is bad input (exit 2).
fn write_outputs(
    command: &RunCommand,
    result: &RunResult,
    comparison: Option<&[GroupSummary; 2]>,
) -> Result<(), String> {
    if let Some(path) = &command.history {
        write_lines(path, "history", result.history.as_deref())?;
    }
    if let Some(path) = &command.trace {
        write_lines(path, "trace", result.trace.as_deref())?;
    }
    if let Some(path) = &command.report {
        let mut text = report::markdown(result);
        if let Some(runs) = comparison {
            text.push_str(&report::protocol_comparison(runs));
        }
        write_file(path, "report", |writer| writer.write_all(text.as_bytes()))?;
    }
    Ok(())
}

/// History and trace files: every line followed by "\n", streamed (a history can be
/// large; no second copy of it in memory).
fn write_lines(path: &Path, what: &str, lines: Option<&[String]>) -> Result<(), String> {
    if lines.is_none() {
        to_stderr(&format!(
            "sim: warning: the run kept no {what}; writing an empty file\n"
        ));
    }
    write_file(path, what, |writer| {
        for line in lines.unwrap_or_default() {
            writer.write_all(line.as_bytes())?;
            writer.write_all(b"\n")?;
        }
        Ok(())
    })
}

fn write_file(
    path: &Path,
    what: &str,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), String> {
    let problem =
        |error: std::io::Error| format!("cannot write the {what} to '{}': {error}", path.display());
    let mut writer = BufWriter::new(File::create(path).map_err(problem)?);
    body(&mut writer).map_err(problem)?;
    writer.flush().map_err(problem)
}

/// `--seeds A..B`: sweep, summarize, exit 0/1 (2 on bad input).
fn sweep_seeds(command: &SweepCommand) -> ExitCode {
    let scenarios: Vec<String> = if command.scenario == ALL_SCENARIOS {
        run::scenario_list()
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect()
    } else {
        vec![command.scenario.clone()]
    };
    let plan = command.plan;
    let total = plan.len().saturating_mul(scenarios.len() as u64);

    let progress = Progress::new(progress_bar(total));
    let started = Instant::now();
    let outcome = sweep::sweep(&scenarios, plan, command.jobs, &command.common, &progress);
    progress.bar.finish_and_clear();
    let total_wall = started.elapsed();
    let sweeps = match outcome {
        Ok(sweeps) => sweeps,
        Err(problem) => return usage_error(&problem.0),
    };

    let threads = command
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    to_stderr(&output::sweep_summary(
        &sweeps,
        plan,
        threads,
        &command.common,
        total_wall,
    ));
    if command.common.json {
        let mut lines = String::new();
        if command.scenario == ALL_SCENARIOS {
            for one in &sweeps {
                lines.push_str(&output::sweep_json(one, plan));
                lines.push('\n');
            }
            lines.push_str(&output::combined_sweep_json(
                &sweeps,
                plan,
                output::millis(total_wall),
            ));
        } else {
            for one in &sweeps {
                lines.push_str(&output::sweep_json(one, plan));
            }
        }
        lines.push('\n');
        to_stdout(&lines);
    }
    // A seed refused as bad input in the middle of a sweep is still bad input.
    let refused = sweeps.iter().find_map(|one| {
        one.tally
            .setup_error
            .as_ref()
            .map(|(seed, reason)| (&one.scenario, *seed, reason))
    });
    if let Some((scenario, seed, reason)) = refused {
        return usage_error(&format!("{scenario} seed {seed}: {reason}"));
    }
    verdict(sweeps.iter().all(|one| one.tally.ok()))
}

/// `--mutation-score`: every bug switch over the scenarios that exercise it, and the
/// correct broker over the same scenarios; exit 0 only if every switch was detected and
/// nothing failed without a switch (2 on bad input).
fn mutation_score(command: &MutationCommand) -> ExitCode {
    let plan = mutation::plan();
    let progress = Progress::new(progress_bar(mutation::total_runs(&plan, command.range)));
    let started = Instant::now();
    let outcome = mutation::score(
        &plan,
        command.range,
        command.jobs,
        &command.common,
        &progress,
    );
    progress.bar.finish_and_clear();
    let wall = started.elapsed();
    let score = match outcome {
        Ok(score) => score,
        Err(problem) => return usage_error(&problem.0),
    };
    if let Some(problem) = score.setup_error() {
        return usage_error(&problem);
    }
    let threads = command
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    to_stderr(&mutation::summary(&score, threads, &command.common, wall));
    if command.common.json {
        to_stdout(&format!(
            "{}\n",
            mutation::json(&score, output::millis(wall))
        ));
    }
    verdict(score.ok())
}

/// A bar on a terminal; nothing at all otherwise (CI logs stay quiet).
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} seeds  {per_sec}  {msg}  ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message("0 failing");
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
