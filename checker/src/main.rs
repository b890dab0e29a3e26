//! `checker HISTORY.jsonl [--json] [--allow KIND]...`: checks one history file.
//!
//! Exit codes (`shared/design/cli.md`): 0 valid (no forbidden anomaly), 1 anomalies,
//! 2 bad usage or unreadable/malformed input, with a one-line error on stderr naming
//! the file or line. With `--json` the human lines go to stderr and stdout holds
//! exactly one line, the JSON report, so scripts can take the last line.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use checker::{check_reader, Policy, Report, KINDS};
use clap::Parser;

/// Checks a logsim history (JSON Lines, Jepsen's Kafka model) for the anomalies of
/// Jepsen's Kafka workload. Exits 0 if valid, 1 on anomalies, 2 on unreadable input.
#[derive(Parser, Debug)]
#[command(name = "checker", version)]
struct Cli {
    /// The history to check (one JSON operation per line; see shared/design/history.md).
    history: PathBuf,

    /// Print one JSON object as the last line of stdout; human text goes to stderr.
    #[arg(long)]
    json: bool,

    /// An anomaly kind this run is allowed to show: still listed, but not a failure.
    /// Repeatable.
    #[arg(long, value_name = "KIND")]
    allow: Vec<String>,
}

fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version exit 0, clap's own convention.
    let cli = Cli::parse();
    let file = match File::open(&cli.history) {
        Ok(file) => file,
        Err(error) => {
            eprintln!(
                "checker: cannot open {}: {}",
                cli.history.display(),
                io_error_text(&error)
            );
            return ExitCode::from(2);
        }
    };
    let mut policy = Policy::default();
    for kind in &cli.allow {
        if !KINDS.contains(&kind.as_str()) {
            eprintln!("checker: note: --allow {kind}: this checker does not report that kind");
        }
        policy = policy.allow(kind.clone());
    }
    // Streamed: the history is checked as it is read, never held whole.
    let report = match check_reader(BufReader::with_capacity(1 << 20, file), &policy) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("checker: {error}");
            return ExitCode::from(2);
        }
    };
    // Output errors (a closed pipe) must not turn into a panic; the exit code still
    // tells the result.
    let _ = if cli.json {
        print_human(&mut std::io::stderr().lock(), &report)
            .and_then(|()| writeln!(std::io::stdout().lock(), "{}", report.to_json_line()))
    } else {
        print_human(&mut std::io::stdout().lock(), &report)
    };
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One line per anomaly (kind, key, ops, detail), then a summary line.
fn print_human(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for anomaly in &report.anomalies {
        let ops: Vec<String> = anomaly.ops.iter().map(u64::to_string).collect();
        writeln!(
            out,
            "{}{} key={} ops=[{}]: {}",
            anomaly.kind,
            if anomaly.allowed { " (allowed)" } else { "" },
            anomaly.key.as_deref().unwrap_or("-"),
            ops.join(","),
            anomaly.detail
        )?;
    }
    let allowed = report
        .anomalies
        .iter()
        .filter(|anomaly| anomaly.allowed)
        .count();
    writeln!(
        out,
        "{}: checked {} ops, {} anomalies ({} allowed)",
        if report.ok() { "valid" } else { "INVALID" },
        report.ops,
        report.anomalies.len(),
        allowed
    )
}

/// "No such file or directory", without Rust's " (os error 2)" suffix.
fn io_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}
