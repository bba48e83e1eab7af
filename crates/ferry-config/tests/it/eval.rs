//! Conditions, templates, secrets and push filters, evaluated as the engine does.

use ferry_config::{EvalContext, Expr, MatrixValue, RunFacts, interpolate, referenced_secrets};
use ferry_types::JobResult;

fn ctx() -> EvalContext {
    let mut c = EvalContext {
        facts: RunFacts {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            short_sha: "01234567".into(),
            branch: Some("main".into()),
            tag: None,
            run_id: "42".into(),
            event: "push".into(),
            pipeline: "shop".into(),
            job: "test (os=linux)".into(),
            workspace: "/work/ws".into(),
        },
        changed_paths: vec!["src/lib.rs".into(), "docs/index.md".into()],
        ..EvalContext::default()
    };
    c.env.insert("DEPLOY".into(), "yes".into());
    c.matrix
        .insert("os".into(), MatrixValue::String("linux".into()));
    c.matrix.insert("shard".into(), MatrixValue::Int(2));
    c.matrix.insert("nightly".into(), MatrixValue::Bool(false));
    c.needs.insert("build".into(), JobResult::Success);
    c.needs.insert("lint".into(), JobResult::Failure);
    c.secrets.insert("TOKEN".into(), "s3cr3t".into());
    c
}

fn eval(source: &str) -> bool {
    let e = Expr::new(source).unwrap_or_else(|e| panic!("{e}"));
    e.evaluate(&ctx()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn conditions_see_branch_tag_and_event() {
    assert!(eval("branch == 'main'"));
    assert!(!eval("branch.startsWith('release/')"));
    assert!(eval("tag == ''"));
    assert!(eval("event == 'push' && ferry.event == 'push'"));
    assert!(eval(
        "ferry.short_sha == '01234567' && ferry.run_id == '42'"
    ));
}

#[test]
fn conditions_see_env_matrix_and_needs_results() {
    assert!(eval("env.DEPLOY == 'yes'"));
    assert!(eval(
        "matrix.os == 'linux' && matrix.shard == 2 && !matrix.nightly"
    ));
    assert!(eval("needs.build.result == 'success'"));
    assert!(eval("needs.lint.result == 'failure'"));
    assert!(eval("!has(env.MISSING)"));
}

#[test]
fn changed_matches_the_pushed_paths_with_globs() {
    assert!(eval("changed('src/**')"));
    assert!(eval("changed('docs/*.md')"));
    assert!(!eval("changed('migrations/**')"));
    assert!(!eval("changed('*.rs')"), "`*` does not cross `/`");
}

#[test]
fn github_style_wrapping_in_if_is_accepted() {
    assert!(eval("${{ branch == 'main' }}"));
}

#[test]
fn a_condition_that_is_not_a_boolean_is_an_error() {
    let e = Expr::new("branch").expect("parses");
    let err = e.evaluate(&ctx()).expect_err("not a boolean");
    assert_eq!(
        err.to_string(),
        "`branch`: a condition must be true or false, found a string"
    );
}

#[test]
fn a_missing_key_is_an_evaluation_error() {
    let e = Expr::new("env.NOPE == 'x'").expect("parses");
    let err = e.evaluate(&ctx()).expect_err("no such key");
    assert!(err.message.contains("NOPE"), "{err}");
}

#[test]
fn conditions_with_unknown_names_or_secrets_are_rejected() {
    let err = Expr::new("brnch == 'main'").expect_err("typo");
    assert_eq!(err.message, "unknown name `brnch`");
    assert!(Expr::new("secrets.TOKEN == ''").is_err());
    assert!(
        Expr::new("['a'].exists(x, x == branch)").is_ok(),
        "macro variables are not names"
    );
}

#[test]
fn interpolation_renders_strings_numbers_booleans_and_secrets() {
    let c = ctx();
    assert_eq!(
        interpolate(
            "os=${{ matrix.os }} shard=${{matrix.shard}} nightly=${{ matrix.nightly }}",
            &c
        )
        .unwrap(),
        "os=linux shard=2 nightly=false"
    );
    assert_eq!(
        interpolate("token ${{ secrets.TOKEN }}", &c).unwrap(),
        "token s3cr3t"
    );
    assert_eq!(interpolate("${{ ferry.sha }}", &c).unwrap(), c.facts.sha);
    assert_eq!(
        interpolate("app-${{ ferry.short_sha }}.tgz", &c).unwrap(),
        "app-01234567.tgz"
    );
    assert_eq!(interpolate("${{ 'a}}b' }}", &c).unwrap(), "a}}b");
    assert_eq!(
        interpolate("no templates here", &c).unwrap(),
        "no templates here"
    );
    assert_eq!(
        interpolate("${{ env.DEPLOY == 'yes' ? 'prod' : 'dev' }}", &c).unwrap(),
        "prod"
    );
}

#[test]
fn interpolation_errors_name_the_expression() {
    let c = ctx();
    let err = interpolate("x ${{ [1, 2] }}", &c).expect_err("a list");
    assert_eq!(
        err.to_string(),
        "`[1, 2]`: a template must produce a string, number or boolean, found a list"
    );
    assert!(interpolate("x ${{ secrets.OTHER }}", &c).is_err());
    assert!(interpolate("x ${{ ferry.sha", &c).is_err());
}

#[test]
fn hash_files_hashes_the_sorted_matching_files_of_the_workspace() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Cargo.lock"), "lock v1").expect("write");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("sub/Cargo.lock"), "nested").expect("write");
    let mut c = ctx();
    c.workspace = Some(dir.path().to_path_buf());
    let key = |t: &str, c: &EvalContext| interpolate(t, c).unwrap_or_else(|e| panic!("{e}"));
    let top = key("cargo-${{ hashFiles('Cargo.lock') }}", &c);
    assert!(
        top.starts_with("cargo-") && top.len() == "cargo-".len() + 64,
        "{top}"
    );
    let all = key("${{ hashFiles('**/Cargo.lock') }}", &c);
    assert_ne!(
        &top["cargo-".len()..],
        all,
        "the nested lock file changes the hash"
    );
    assert_eq!(
        key("${{ hashFiles('sub/Cargo.lock', 'Cargo.lock') }}", &c),
        all
    );
    assert_eq!(key("${{ hashFiles('nothing/*') }}", &c), "");
    std::fs::write(dir.path().join("Cargo.lock"), "lock v2").expect("write");
    assert_ne!(
        key("cargo-${{ hashFiles('Cargo.lock') }}", &c),
        top,
        "content changes the key"
    );
    c.workspace = None;
    assert!(interpolate("${{ hashFiles('Cargo.lock') }}", &c).is_err());
}

#[test]
fn referenced_secrets_are_found_in_the_parsed_expressions() {
    let found: Vec<String> = referenced_secrets(
        "${{ secrets.A }} ${{ secrets['B'] + 'x' }} ${{ has(secrets.C) ? secrets.C : '' }} secrets.D ${{ env.E }}",
    )
    .into_iter()
    .collect();
    assert_eq!(found, ["A", "B", "C"]);
}

#[test]
fn push_filters_match_branches_tags_and_paths() {
    let p = crate::valid(
        "on:\n  push:\n    branches: [main, 'release/**']\n    paths: ['src/**']\njobs:\n  a:\n    steps: [x]\n",
    );
    let push = p.on.push.expect("push");
    let changed = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(push.matches(Some("main"), None, &changed(&["src/a.rs"])));
    assert!(push.matches(
        Some("release/1.2"),
        None,
        &changed(&["docs/x", "src/b/c.rs"])
    ));
    assert!(
        !push.matches(Some("main"), None, &changed(&["docs/x"])),
        "no path matches"
    );
    assert!(!push.matches(Some("feature"), None, &changed(&["src/a.rs"])));
    assert!(
        !push.matches(None, Some("v1"), &[]),
        "only branches are listed"
    );

    let tags = crate::valid("on:\n  push:\n    tags: ['v*']\njobs:\n  a:\n    steps: [x]\n")
        .on
        .push
        .expect("push");
    assert!(tags.matches(None, Some("v1.0"), &[]));
    assert!(!tags.matches(None, Some("nightly"), &[]));
    assert!(
        !tags.matches(Some("main"), None, &[]),
        "only tags are listed"
    );

    let any = crate::valid("on: push\njobs:\n  a:\n    steps: [x]\n")
        .on
        .push
        .expect("push");
    assert!(any.matches(Some("anything"), None, &[]));
    assert!(any.matches(None, Some("v9"), &[]));
}

#[test]
fn the_documented_standard_functions_and_operators_work() {
    assert!(eval("branch.matches('^ma[a-z]+$')"));
    assert!(eval("branch in ['main', 'staging']"));
    assert!(eval("string(matrix.shard) == '2' && int('3') == 3"));
    assert!(eval(
        "size(branch) == 4 && branch.endsWith('in') && branch.contains('ai')"
    ));
    assert!(eval(
        "['a', 'b'].exists(x, x == 'b') && [1, 2].all(x, x > 0)"
    ));
    assert!(eval("[1, 2, 3].filter(x, x > 1).map(x, x * 2) == [4, 6]"));
    assert!(eval("(event == 'push' ? 'p' : 'o') + 'k' == 'pk'"));
}
