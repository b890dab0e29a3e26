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
            let result = common::run(&common::options(scenario, seed, &[]));
            let report = sim::report::markdown(&result);
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
