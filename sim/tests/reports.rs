//! Report snapshots: every scenario x 2 seeds renders the same Markdown report as the
//! reviewed copy under `reports/`. A change in broker behaviour shows up here as a diff
//! to review (`cargo insta review`), not as a silent drift. CI runs with `CI=true`, so
//! insta never rewrites a snapshot there: a drift fails the build.

mod common;

#[test]
fn every_scenario_report_matches_its_snapshot() {
    let mut names = Vec::new();
    for (scenario, _) in sim::run::scenario_list() {
        for seed in [1, 2] {
            let options = common::options(scenario, seed, &[]);
            let result = common::run(&options);
            let mut report = sim::report::markdown(&result);
            // A consumer group run's report ends with the eager/cooperative comparison,
            // as `--report` writes it.
            if let Some(runs) = sim::run::protocol_comparison(&options).expect("runs") {
                report.push_str(&sim::report::protocol_comparison(&runs));
            }
            let name = format!("{scenario}-seed-{seed}");
            insta::with_settings!({
                snapshot_path => "../../reports",
                prepend_module_to_snapshot => false,
                omit_expression => true,
            }, {
                insta::assert_snapshot!(name.clone(), report);
            });
            names.push(name);
        }
    }
    assert_eq!(names.len(), 2 * sim::run::scenario_list().len());
}
