//! The `sim` command line: the options of `design/cli.md`, parsed with clap and then
//! checked into one [`Command`].
//!
//! Every way of getting the command line wrong ends as a [`CliError::Usage`] holding one
//! line; `main` prints it as `sim: <problem>` and exits 2. clap's own multi-line errors
//! (usage block, tips) are cut to their first line for the same reason: scripts and CI
//! logs read one line per problem, and exit code 2 is the contract for bad input.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::Parser;

/// The scenario name that means "every scenario of `--list-scenarios`" in a sweep.
pub const ALL_SCENARIOS: &str = "all";

/// Raw options as clap sees them. Cross-option rules live in [`Args::into_command`],
/// so that their errors name the problem in our words rather than clap's.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "sim",
    version,
    about = "Deterministic simulation of a Kafka-style broker: one seed, or a sweep of seeds",
    after_help = "Examples:\n  \
        sim --seed 7 --scenario broker-failure\n  \
        sim --seeds 0..1000 --scenario broker-failure --jobs 8\n  \
        sim --seeds 0..1000 --scenario all --json\n  \
        sim --seed 4217 --scenario broker-failure --bug hw-truncation --report run.md\n  \
        sim --mutation-score --seeds 0..200 --json\n\n\
        Exit codes: 0 every run held every invariant; 1 an anomaly, a panic or a \
        determinism mismatch; 2 bad usage or input."
)]
pub struct Args {
    /// Run one seed.
    #[arg(long, value_name = "N", conflicts_with = "seeds")]
    pub seed: Option<u64>,

    /// Sweep the half-open seed range A..B (B exclusive), in parallel.
    #[arg(long, value_name = "A..B", value_parser = parse_seed_range)]
    pub seeds: Option<SeedRange>,

    /// Scenario from --list-scenarios; `all` in a sweep runs every scenario.
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<String>,

    /// Print every scenario with a one-line description.
    #[arg(long)]
    pub list_scenarios: bool,

    /// Print the bug switches (name, source, description).
    #[arg(long)]
    pub list_bugs: bool,

    /// Switch on a reintroduced historical broker bug (repeatable).
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,

    /// Print one JSON object as the last line of stdout; human text goes to stderr.
    #[arg(long)]
    pub json: bool,

    /// Write the recorded history as JSON Lines (one run only).
    #[arg(long, value_name = "PATH")]
    pub history: Option<PathBuf>,

    /// Write every simulated event, one per line (one run only).
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,

    /// Write the human-readable run report as Markdown (one run only).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Worker threads for a sweep (default: all cores); results do not depend on it.
    #[arg(long, value_name = "J", value_parser = parse_jobs)]
    pub jobs: Option<usize>,

    /// Run only shard K of N (0-based, 0 <= K < N): the seeds s with (s - A) % N == K.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,

    /// Override one scenario config value, Kafka key names (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,

    /// Run each seed twice and fail if the two runs differ (trace hash, events, anomalies).
    #[arg(long)]
    pub check_determinism: bool,

    /// Mutation score: sweep --seeds (default 0..200) with each --list-bugs switch on, over
    /// the scenarios that exercise it, and the correct broker over the same scenarios;
    /// report per switch whether it was detected, the seeds to first detection, the
    /// failing seeds and the anomaly kinds, and the false alarms of the correct broker.
    /// Exit 0 only if every switch is detected and there is no false alarm. Takes
    /// --seeds, --jobs, --json, --set and --check-determinism; not --seed, --scenario,
    /// --bug, --shard or the --list-* options.
    #[arg(long)]
    pub mutation_score: bool,

    /// With --seed (or --replay): minimize the failing run — drop faults, thin the
    /// workload, shorten the phases while the same anomaly kind still appears — and write
    /// the minimal run as a replay file (--shrink-to, default shrunk-SCENARIO-SEED.json).
    #[arg(long)]
    pub shrink: bool,

    /// Where --shrink writes its replay file.
    #[arg(long, value_name = "PATH", requires = "shrink")]
    pub shrink_to: Option<PathBuf>,

    /// Run the plan of a replay file (written by --shrink): its scenario, seed, bugs,
    /// config overrides, fault schedule, workload and phases. Takes the one-run outputs
    /// (--json, --history, --trace, --report); not --seed, --seeds, --scenario, --bug, --set.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
}

/// The seed range `--mutation-score` sweeps when `--seeds` is not given.
pub const MUTATION_SCORE_SEEDS: SeedRange = SeedRange { start: 0, end: 200 };

/// A half-open range of seeds, `start..end`, never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

/// `--shard K/N`: shard `index` (0-based) of `count`.
///
/// 0-based because the seed arithmetic is `(seed - start) % count == index`; CI matrices
/// that count from 1 pass `$((i-1))/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// The seeds one sweep runs: a range, optionally cut to one shard. Seeds are addressed
/// by position so that rayon can split the work without materialising a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedPlan {
    pub range: SeedRange,
    pub shard: Option<Shard>,
}

impl SeedPlan {
    /// How many seeds this plan runs.
    pub fn len(&self) -> u64 {
        let span = self.range.end - self.range.start;
        match self.shard {
            None => span,
            Some(shard) if shard.index >= span => 0,
            Some(shard) => (span - shard.index - 1) / shard.count + 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The seed at `position` (`position < len()`), in increasing seed order.
    pub fn seed(&self, position: u64) -> u64 {
        debug_assert!(position < self.len());
        match self.shard {
            None => self.range.start + position,
            Some(shard) => self.range.start + shard.index + position * shard.count,
        }
    }
}

/// What one invocation asks for, after every cross-option rule was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `--list-scenarios` and/or `--list-bugs` (both may be given; scenarios first).
    List { scenarios: bool, bugs: bool },
    /// `--seed N`: one run.
    Run(RunCommand),
    /// `--seeds A..B`: a sweep.
    Sweep(SweepCommand),
    /// `--mutation-score`: every bug switch against the scenarios that exercise it.
    MutationScore(MutationCommand),
}

/// Options shared by one run and a sweep: what each single run is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Common {
    pub bugs: Vec<String>,
    pub sets: Vec<(String, String)>,
    pub json: bool,
    pub check_determinism: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCommand {
    pub scenario: String,
    pub seed: u64,
    pub common: Common,
    pub history: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub report: Option<PathBuf>,
    /// `--replay FILE`: the run's scenario, seed, bugs, sets and plan come from it.
    pub replay: Option<PathBuf>,
    /// `--shrink`: minimize instead of just running; `Some(path)` from `--shrink-to`.
    pub shrink: Option<Option<PathBuf>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepCommand {
    /// As given: a scenario name or [`ALL_SCENARIOS`]; `main` expands `all`.
    pub scenario: String,
    pub plan: SeedPlan,
    /// `None`: one worker per core.
    pub jobs: Option<usize>,
    pub common: Common,
}

/// `--mutation-score [--seeds A..B]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutationCommand {
    /// The seeds every (switch, scenario) pair runs, and the correct broker too.
    pub range: SeedRange,
    /// `None`: one worker per core.
    pub jobs: Option<usize>,
    /// `bugs` is always empty: the command sets one switch per sweep itself.
    pub common: Common,
}

/// Why parsing stopped.
#[derive(Debug)]
pub enum CliError {
    /// `--help` or `--version`: clap's text, printed as is, exit 0.
    Display(clap::Error),
    /// Bad usage: one line (without the `sim: ` prefix), exit 2.
    Usage(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Display(err) => write!(f, "{err}"),
            CliError::Usage(line) => f.write_str(line),
        }
    }
}

/// Parse a full command line (program name first) into a [`Command`].
pub fn parse<I, T>(argv: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Args::try_parse_from(argv) {
        Ok(args) => args.into_command(),
        Err(err) => Err(match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => CliError::Display(err),
            _ => CliError::Usage(one_line(&err.to_string())),
        }),
    }
}

/// The first line of a clap error, without its `error: ` prefix.
fn one_line(rendered: &str) -> String {
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("bad usage");
    first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .trim()
        .to_string()
}

fn usage<T>(line: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::Usage(line.into()))
}

impl Args {
    /// Apply the rules clap's attributes cannot say in one line each.
    pub fn into_command(self) -> Result<Command, CliError> {
        if self.mutation_score {
            return self.into_mutation_command();
        }
        if let Some(file) = self.replay.clone() {
            return self.into_replay_command(file);
        }
        if self.list_scenarios || self.list_bugs {
            return Ok(Command::List {
                scenarios: self.list_scenarios,
                bugs: self.list_bugs,
            });
        }
        let common = Common {
            bugs: self.bugs,
            sets: self.sets,
            json: self.json,
            check_determinism: self.check_determinism,
        };
        let Some(scenario) = self.scenario else {
            if self.seed.is_none() && self.seeds.is_none() {
                return usage("nothing to do: give --seed N or --seeds A..B with --scenario NAME, or --list-scenarios (see --help)");
            }
            return usage("missing --scenario NAME (see --list-scenarios)");
        };
        if scenario.is_empty() {
            return usage("--scenario needs a name (see --list-scenarios)");
        }
        match (self.seed, self.seeds) {
            (Some(seed), None) => {
                if scenario == ALL_SCENARIOS {
                    return usage(
                        "--scenario all runs every scenario and needs --seeds A..B, not --seed",
                    );
                }
                if self.shard.is_some() {
                    return usage("--shard splits a sweep and needs --seeds A..B, not --seed");
                }
                Ok(Command::Run(RunCommand {
                    scenario,
                    seed,
                    common,
                    history: self.history,
                    trace: self.trace,
                    report: self.report,
                    replay: None,
                    shrink: self.shrink.then_some(self.shrink_to),
                }))
            }
            (None, Some(range)) => {
                if self.shrink {
                    return usage(
                        "--shrink minimizes one failing run and needs --seed N, not --seeds",
                    );
                }
                for (flag, given) in [
                    ("--history", self.history.is_some()),
                    ("--trace", self.trace.is_some()),
                    ("--report", self.report.is_some()),
                ] {
                    if given {
                        return usage(format!(
                            "{flag} writes one run's output and needs --seed N, not --seeds (rerun the seed you want to inspect)"
                        ));
                    }
                }
                Ok(Command::Sweep(SweepCommand {
                    scenario,
                    plan: SeedPlan {
                        range,
                        shard: self.shard,
                    },
                    jobs: self.jobs,
                    common,
                }))
            }
            (None, None) => usage("missing --seed N (one run) or --seeds A..B (sweep)"),
            // clap's `conflicts_with` rejects this first; kept so the match is total.
            (Some(_), Some(_)) => usage("--seed and --seeds cannot be used together"),
        }
    }

    /// `--replay FILE`: everything that defines the run comes from the file.
    fn into_replay_command(self, file: PathBuf) -> Result<Command, CliError> {
        for (flag, given) in [
            ("--seed", self.seed.is_some()),
            ("--seeds", self.seeds.is_some()),
            ("--scenario", self.scenario.is_some()),
            ("--bug", !self.bugs.is_empty()),
            ("--set", !self.sets.is_empty()),
            ("--shard", self.shard.is_some()),
            ("--mutation-score", self.mutation_score),
            ("--list-scenarios", self.list_scenarios),
            ("--list-bugs", self.list_bugs),
        ] {
            if given {
                return usage(format!(
                    "--replay runs what its file says and cannot be combined with {flag}"
                ));
            }
        }
        Ok(Command::Run(RunCommand {
            scenario: String::new(),
            seed: 0,
            common: Common {
                bugs: Vec::new(),
                sets: Vec::new(),
                json: self.json,
                check_determinism: self.check_determinism,
            },
            history: self.history,
            trace: self.trace,
            report: self.report,
            replay: Some(file),
            shrink: self.shrink.then_some(self.shrink_to),
        }))
    }

    /// `--mutation-score` chooses the scenarios and the bug switches itself, and keeps
    /// no per-run files: every option that would say otherwise is refused, naming it.
    fn into_mutation_command(self) -> Result<Command, CliError> {
        for (flag, given) in [
            ("--seed", self.seed.is_some()),
            ("--scenario", self.scenario.is_some()),
            ("--list-scenarios", self.list_scenarios),
            ("--list-bugs", self.list_bugs),
            ("--bug", !self.bugs.is_empty()),
            ("--shard", self.shard.is_some()),
            ("--history", self.history.is_some()),
            ("--trace", self.trace.is_some()),
            ("--report", self.report.is_some()),
        ] {
            if given {
                return usage(format!(
                    "--mutation-score cannot be combined with {flag} (it runs every bug switch over the scenarios that exercise it; see --help)"
                ));
            }
        }
        Ok(Command::MutationScore(MutationCommand {
            range: self.seeds.unwrap_or(MUTATION_SCORE_SEEDS),
            jobs: self.jobs,
            common: Common {
                bugs: Vec::new(),
                sets: self.sets,
                json: self.json,
                check_determinism: self.check_determinism,
            },
        }))
    }
}

fn parse_seed_number(text: &str, which: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        format!("{which} '{text}' is not a seed (a whole number 0..=18446744073709551615)")
    })
}

/// `A..B`, half-open, `A < B`.
pub fn parse_seed_range(text: &str) -> Result<SeedRange, String> {
    let Some((start, end)) = text.split_once("..") else {
        return Err("expected a half-open range A..B, e.g. 0..1000".to_string());
    };
    if end.starts_with('=') {
        return Err(
            "inclusive ranges (A..=B) are not supported; use A..B with B exclusive".to_string(),
        );
    }
    let start = parse_seed_number(start, "start")?;
    let end = parse_seed_number(end, "end")?;
    if end <= start {
        return Err(format!(
            "empty range: end {end} is not after start {start} (B is exclusive)"
        ));
    }
    Ok(SeedRange { start, end })
}

/// `K/N` with `0 <= K < N`.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let Some((index, count)) = text.split_once('/') else {
        return Err("expected K/N, e.g. 0/4 (K is 0-based)".to_string());
    };
    let index: u64 = index
        .trim()
        .parse()
        .map_err(|_| format!("shard index '{index}' is not a whole number"))?;
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| format!("shard count '{count}' is not a whole number"))?;
    if count == 0 {
        return Err("shard count must be at least 1".to_string());
    }
    if index >= count {
        return Err(format!(
            "shard index {index} must be below the shard count {count} (K is 0-based)"
        ));
    }
    Ok(Shard { index, count })
}

/// `KEY=VALUE`; the key is a Kafka config name and must not be empty. Whether the key
/// and value make sense is the scenario's call (a [`crate::run::SetupError`], exit 2).
pub fn parse_set(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err("expected KEY=VALUE, e.g. min.insync.replicas=2".to_string());
    };
    if key.trim().is_empty() {
        return Err("the key before '=' is empty; expected KEY=VALUE".to_string());
    }
    Ok((key.trim().to_string(), value.to_string()))
}

/// At least one worker thread.
pub fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("needs at least 1 worker thread".to_string()),
        Ok(jobs) => Ok(jobs),
        Err(_) => Err(format!("'{text}' is not a number of threads")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Result<Command, CliError> {
        parse(std::iter::once("sim").chain(args.iter().copied()))
    }

    fn usage_line(args: &[&str]) -> String {
        match cmd(args) {
            Err(CliError::Usage(line)) => line,
            other => panic!("expected a usage error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn ranges_are_half_open_and_never_empty() {
        assert_eq!(
            parse_seed_range("0..10"),
            Ok(SeedRange { start: 0, end: 10 })
        );
        assert!(parse_seed_range("5..2").is_err());
        assert!(parse_seed_range("5..5").is_err());
        assert!(parse_seed_range("x..3").is_err());
        assert!(parse_seed_range("3").is_err());
        assert!(parse_seed_range("1..=3").is_err());
    }

    #[test]
    fn shards_partition_the_range() {
        let range = SeedRange { start: 10, end: 27 };
        let mut seen = Vec::new();
        for index in 0..4 {
            let plan = SeedPlan {
                range,
                shard: Some(Shard { index, count: 4 }),
            };
            for position in 0..plan.len() {
                let seed = plan.seed(position);
                assert_eq!((seed - range.start) % 4, index);
                seen.push(seed);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (10..27).collect::<Vec<_>>());
        let tiny = SeedPlan {
            range: SeedRange { start: 0, end: 2 },
            shard: Some(Shard { index: 3, count: 5 }),
        };
        assert!(tiny.is_empty());
        assert!(parse_shard("3/2").is_err());
        assert!(parse_shard("0/0").is_err());
        assert_eq!(parse_shard("1/2"), Ok(Shard { index: 1, count: 2 }));
    }

    #[test]
    fn sets_need_an_equals_sign() {
        assert_eq!(parse_set("acks=all"), Ok(("acks".into(), "all".into())));
        assert_eq!(parse_set("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_set("nokey").is_err());
        assert!(parse_set("=1").is_err());
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            &["--seed", "x", "--scenario", "s"][..],
            &["--seeds", "5..2", "--scenario", "s"],
            &["--seed", "1", "--seeds", "0..2", "--scenario", "s"],
            &["--seeds", "0..2", "--scenario", "s", "--history", "h"],
            &["--seed", "1", "--scenario", "all"],
            &["--seed", "1"],
            &[],
            &["--bogus"],
        ] {
            let line = usage_line(args);
            assert!(!line.contains('\n'), "{args:?}: {line}");
            assert!(!line.is_empty());
        }
    }

    #[test]
    fn one_run_and_sweep() {
        let Ok(Command::Run(run)) = cmd(&[
            "--seed",
            "7",
            "--scenario",
            "s",
            "--bug",
            "a",
            "--bug",
            "b",
            "--set",
            "k=v",
        ]) else {
            panic!("expected a run");
        };
        assert_eq!(run.seed, 7);
        assert_eq!(run.common.bugs, vec!["a", "b"]);
        assert_eq!(run.common.sets, vec![("k".to_string(), "v".to_string())]);
        let Ok(Command::Sweep(sweep)) = cmd(&[
            "--seeds",
            "0..9",
            "--scenario",
            "all",
            "--jobs",
            "3",
            "--shard",
            "1/3",
        ]) else {
            panic!("expected a sweep");
        };
        assert_eq!(sweep.jobs, Some(3));
        assert_eq!(sweep.plan.len(), 3);
    }

    #[test]
    fn mutation_score_defaults_to_0_200_and_stands_alone() {
        let Ok(Command::MutationScore(score)) = cmd(&["--mutation-score"]) else {
            panic!("expected a mutation score");
        };
        assert_eq!(score.range, MUTATION_SCORE_SEEDS);
        assert_eq!(score.range, SeedRange { start: 0, end: 200 });
        let Ok(Command::MutationScore(score)) = cmd(&[
            "--mutation-score",
            "--seeds",
            "3..9",
            "--json",
            "--jobs",
            "2",
        ]) else {
            panic!("expected a mutation score");
        };
        assert_eq!(score.range, SeedRange { start: 3, end: 9 });
        assert_eq!(score.jobs, Some(2));
        assert!(score.common.json);
        assert!(score.common.bugs.is_empty());
        for other in [
            &["--seed", "1"][..],
            &["--scenario", "broker-failure"],
            &["--list-scenarios"],
            &["--list-bugs"],
            &["--bug", "hw-truncation"],
            &["--shard", "0/2"],
            &["--report", "r.md"],
        ] {
            let args: Vec<&str> = std::iter::once("--mutation-score")
                .chain(other.iter().copied())
                .collect();
            let line = usage_line(&args);
            assert!(line.contains("--mutation-score"), "{args:?}: {line}");
            assert!(!line.contains('\n'));
        }
    }
}
