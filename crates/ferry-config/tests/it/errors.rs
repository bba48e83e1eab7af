//! One snapshot per class of problem, pinning the message people read.

use crate::errors;
use insta::assert_snapshot;

#[test]
fn reports_yaml_syntax_errors_at_the_parsers_position() {
    assert_snapshot!(errors("jobs:\n  build:\n    steps: [make\n  test:\n"));
}

#[test]
fn reports_unknown_keys_with_did_you_mean() {
    assert_snapshot!(errors(
        "jobs:\n  build:\n    steps: [make]\n  test:\n    neds: build\n    allow-failure: true\n    steps:\n      - run: make test\n        nmae: Test\n"
    ));
}

#[test]
fn reports_wrong_types() {
    assert_snapshot!(errors(
        "on:\n  push:\n    branches: [main, 5]\njobs:\n  build:\n    retry: many\n    steps: make\n    env: [A]\n"
    ));
}

#[test]
fn reports_needs_naming_a_missing_job() {
    assert_snapshot!(errors(
        "jobs:\n  build:\n    steps: [make]\n  test:\n    needs: [biuld]\n    steps: [make test]\n"
    ));
}

#[test]
fn reports_cycles_in_needs_naming_the_cycle() {
    assert_snapshot!(errors(
        "jobs:\n  a:\n    needs: c\n    steps: [x]\n  b:\n    needs: a\n    steps: [x]\n  c:\n    needs: b\n    steps: [x]\n  d:\n    needs: d\n    steps: [x]\n"
    ));
}

#[test]
fn reports_invalid_cron_with_the_cron_parsers_message() {
    assert_snapshot!(errors(
        "on:\n  schedule:\n    - cron: \"0 25 * * *\"\n    - cron: every day\n    - cron: \"0 0 3 * * *\"\n    - cron: \"@daily\"\njobs:\n  a:\n    steps: [x]\n"
    ));
}

#[test]
fn reports_invalid_globs() {
    assert_snapshot!(errors(
        "on:\n  push:\n    branches: [\"release/[v\"]\n    paths: [\"src/{a,b\"]\njobs:\n  a:\n    if: changed('docs/[')\n    steps: [x]\n"
    ));
}

#[test]
fn reports_expressions_that_do_not_parse() {
    assert_snapshot!(errors(
        "jobs:\n  a:\n    if: branch == 'main' &&\n    steps: [x]\n"
    ));
}

#[test]
fn reports_unknown_names_in_expressions() {
    assert_snapshot!(errors(
        "jobs:\n  build:\n    steps: [x]\n  a:\n    needs: build\n    if: brnch == 'main' || ferry.shaa == '' || needs.biuld.result == 'success'\n    steps:\n      - run: echo ${{ matrix.os }}\n        if: secrets.TOKEN != ''\n"
    ));
}

#[test]
fn reports_duplicate_job_ids_and_keys() {
    assert_snapshot!(errors(
        "jobs:\n  build:\n    steps: [make]\n  build:\n    steps: [make all]\n    env:\n      A: 1\n      A: 2\n"
    ));
}

#[test]
fn reports_empty_jobs_and_jobs_without_steps() {
    assert_snapshot!(errors("name: x\njobs: {}\n"));
    assert_snapshot!(
        "job_without_steps",
        errors("jobs:\n  build:\n    image: rust\n  test:\n    steps: []\n")
    );
}

#[test]
fn reports_matrix_instances_that_collide() {
    assert_snapshot!(errors(
        "jobs:\n  test:\n    matrix:\n      os: [linux, mac]\n      include:\n        - os: linux\n    steps: [x]\n"
    ));
}

#[test]
fn reports_empty_matrices() {
    assert_snapshot!(errors(
        "jobs:\n  a:\n    matrix:\n      os: []\n    steps: [x]\n  b:\n    matrix:\n      os: [linux]\n      exclude:\n        - os: linux\n    steps: [x]\n"
    ));
}

#[test]
fn reports_invalid_timeouts() {
    assert_snapshot!(errors(
        "jobs:\n  a:\n    timeout: ten minutes\n    steps:\n      - run: x\n        timeout: 0s\n"
    ));
}

#[test]
fn reports_a_shell_without_the_script_placeholder() {
    assert_snapshot!(errors("jobs:\n  a:\n    shell: python3\n    steps: [x]\n"));
}

#[test]
fn reports_invalid_templates() {
    assert_snapshot!(errors(
        "env:\n  A: ${{ ferry.sha\njobs:\n  a:\n    steps:\n      - echo ${{ 1 + }}\n      - echo ${{ secrts.X }}\n"
    ));
}

#[test]
fn reports_every_problem_of_the_file_at_once_in_line_order() {
    assert_snapshot!(errors(
        "on:\n  push:\n    branchs: main\njobs:\n  a:\n    steps: [x]\n    retry: -1\n  b:\n    needs: [c]\n    steps: [x]\n    timeout: soon\n"
    ));
}

#[test]
fn reports_an_empty_file() {
    assert_snapshot!(errors("# nothing here\n"));
}

#[test]
fn odd_files_are_reported_not_panicked_on() {
    let odd = [
        "- a\n- b\n",
        "hello\n",
        "jobs: 5\n",
        "jobs:\n  a: 5\n",
        "jobs:\n  a:\n    steps: [{}]\n",
        "jobs:\n  a:\n    steps: [[x]]\n",
        "jobs:\n  a: &x\n    steps: [x]\n  b: *x\n",
        "jobs:\n  a:\n    steps: [x]\n    needs: [a, a]\n",
        "on: 5\njobs:\n  a:\n    steps: [x]\n",
        "on: [push, schedule, pull]\njobs:\n  a:\n    steps: [x]\n",
        "jobs:\n  'a b':\n    steps: [x]\n",
        "jobs:\n  a:\n    matrix: {include: [{}], exclude: 3}\n    steps: [x]\n",
        "jobs:\n  a:\n    services:\n      db: {ports: [0, 70000, x], command: run}\n    steps: [x]\n",
        "jobs:\n  a:\n    cache: {}\n    concurrency: {}\n    artifacts: {}\n    approval: maybe\n    steps: [x]\n",
        "jobs:\n\t a:\n",
        "\u{feff}jobs:\n  a:\n    steps: ['${{']\n",
    ];
    for text in odd {
        let rendered = errors(text);
        assert!(
            rendered.starts_with("ferry.yml"),
            "{text:?} gave {rendered}"
        );
    }
}

#[test]
fn reports_odd_shapes_of_on_jobs_and_settings() {
    assert_snapshot!(errors(
        "on: [push, schedule, pull]\nenv:\n  1X: a\n  MY-VAR: b\njobs:\n  'a b':\n    needs: [x, x]\n    steps: [[x]]\n    services:\n      db: {ports: [0, 70000], command: run}\n    cache: {}\n    approval: maybe\n"
    ));
}

#[test]
fn explains_keys_from_github_actions_and_gitlab_ci() {
    assert_snapshot!(errors(
        "stages: [build]\njobs:\n  a:\n    stage: build\n    script: [make]\n    steps:\n      - uses: actions/checkout@v4\n"
    ));
}
