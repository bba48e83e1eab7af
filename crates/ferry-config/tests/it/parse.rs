use crate::valid;
use ferry_config::{MatrixValue, Shell};
use std::time::Duration;

const FULL: &str = r#"
name: shop
on:
  push:
    branches: [main, "release/**"]
    tags: v*
    paths: ["src/**", Cargo.lock]
  schedule:
    - cron: "0 3 * * 1-5"
  manual: true
env:
  RUST_BACKTRACE: 1
  REGISTRY: registry.example.com
jobs:
  build:
    image: rust:1.90
    steps:
      - cargo build --release
      - name: Package
        run: tar czf app.tgz target/release/app
        shell: sh
    artifacts: [app.tgz]
    cache:
      key: cargo-${{ hashFiles('Cargo.lock') }}
      paths: [target]
    timeout: 20m
  test:
    needs: build
    matrix:
      os: [linux, mac]
      rust: [stable, "1.80"]
      exclude:
        - os: mac
          rust: "1.80"
      include:
        - os: windows
          rust: stable
    runs-on: [linux, docker]
    services:
      db:
        image: postgres:16
        env:
          POSTGRES_PASSWORD: ${{ secrets.DB_PASSWORD }}
        ports: [5432]
        healthcheck: pg_isready
        command: [postgres, -c, fsync=off]
    env:
      DATABASE_URL: postgres://postgres:${{ secrets.DB_PASSWORD }}@db/test
    steps:
      - run: cargo test
        env:
          TOKEN: ${{ secrets.API_TOKEN }}
        timeout: 5m
        working-directory: crates
        allow_failure: true
        if: ${{ matrix.os == 'linux' }}
    retry: 2
    allow_failure: false
    shell: python3 {0}
  deploy:
    needs: [test]
    if: branch == 'main' && needs.test.result == 'success'
    approval:
      message: Ship it?
    concurrency:
      group: deploy-${{ branch }}
      cancel-in-progress: true
    working-directory: deploy
    steps:
      - ./deploy.sh ${{ ferry.sha }}
"#;

#[test]
fn full_example_parses_into_the_model() {
    let p = valid(FULL);
    assert_eq!(p.name, "shop");
    let push = p.on.push.as_ref().expect("push trigger");
    let pats = |g: &[ferry_config::Glob]| g.iter().map(|g| g.pattern.clone()).collect::<Vec<_>>();
    assert_eq!(pats(&push.branches), ["main", "release/**"]);
    assert_eq!(pats(&push.tags), ["v*"]);
    assert_eq!(pats(&push.paths), ["src/**", "Cargo.lock"]);
    assert_eq!(p.on.schedule.len(), 1);
    assert_eq!(p.on.schedule[0].cron, "0 3 * * 1-5");
    assert!(p.on.manual);
    assert_eq!(p.env["RUST_BACKTRACE"], "1");
    assert_eq!(
        p.jobs.keys().collect::<Vec<_>>(),
        ["build", "test", "deploy"]
    );

    let build = &p.jobs["build"];
    assert_eq!(build.image.as_deref(), Some("rust:1.90"));
    assert_eq!(build.steps.len(), 2);
    assert_eq!(build.steps[0].run, "cargo build --release");
    assert_eq!(build.steps[0].display_name(), "cargo build --release");
    assert_eq!(build.steps[1].name.as_deref(), Some("Package"));
    assert_eq!(build.steps[1].shell, Some(Shell::Sh));
    assert_eq!(
        build.artifacts.as_ref().map(|a| a.paths.clone()),
        Some(vec!["app.tgz".to_string()])
    );
    let cache = build.cache.as_ref().expect("cache");
    assert_eq!(cache.key, "cargo-${{ hashFiles('Cargo.lock') }}");
    assert_eq!(cache.paths, ["target"]);
    assert_eq!(build.timeout, Some(Duration::from_secs(20 * 60)));
    assert_eq!(build.retry, 0);

    let test = &p.jobs["test"];
    assert_eq!(test.needs, ["build"]);
    let m = test.matrix.as_ref().expect("matrix");
    assert_eq!(
        m.axes["os"],
        [
            MatrixValue::String("linux".into()),
            MatrixValue::String("mac".into())
        ]
    );
    assert_eq!(m.axes["rust"][1], MatrixValue::String("1.80".into()));
    assert_eq!(m.include.len(), 1);
    assert_eq!(m.exclude.len(), 1);
    assert_eq!(test.runs_on, ["linux", "docker"]);
    let db = &test.services["db"];
    assert_eq!(db.image, "postgres:16");
    assert_eq!(db.ports, [5432]);
    assert_eq!(db.healthcheck.as_deref(), Some("pg_isready"));
    assert_eq!(
        db.command.as_deref(),
        Some(&["postgres".to_string(), "-c".into(), "fsync=off".into()][..])
    );
    let step = &test.steps[0];
    assert_eq!(step.timeout, Some(Duration::from_secs(300)));
    assert_eq!(step.working_directory.as_deref(), Some("crates"));
    assert!(step.allow_failure);
    assert!(step.condition.is_some());
    assert_eq!(test.retry, 2);
    assert_eq!(test.shell, Some(Shell::Command("python3 {0}".into())));

    let deploy = &p.jobs["deploy"];
    assert_eq!(
        deploy.approval.as_ref().and_then(|a| a.message.as_deref()),
        Some("Ship it?")
    );
    let c = deploy.concurrency.as_ref().expect("concurrency");
    assert_eq!(c.group, "deploy-${{ branch }}");
    assert!(c.cancel_in_progress);
    assert_eq!(deploy.working_directory.as_deref(), Some("deploy"));
    assert_eq!(
        deploy.condition.as_ref().map(|c| c.source.as_str()),
        Some("branch == 'main' && needs.test.result == 'success'")
    );

    let secrets: Vec<String> = test.referenced_secrets(&p.env).into_iter().collect();
    assert_eq!(secrets, ["API_TOKEN", "DB_PASSWORD"]);
}

#[test]
fn matrix_expands_product_minus_exclude_plus_include_with_needs_on_every_instance() {
    let p = valid(FULL);
    let ids: Vec<(String, Vec<String>)> =
        p.instances().into_iter().map(|i| (i.id, i.needs)).collect();
    let t = |s: &str| s.to_string();
    assert_eq!(
        ids,
        [
            (t("build"), vec![]),
            (t("test (os=linux, rust=stable)"), vec![t("build")]),
            (t("test (os=linux, rust=1.80)"), vec![t("build")]),
            (t("test (os=mac, rust=stable)"), vec![t("build")]),
            (t("test (os=windows, rust=stable)"), vec![t("build")]),
            (
                t("deploy"),
                vec![
                    t("test (os=linux, rust=stable)"),
                    t("test (os=linux, rust=1.80)"),
                    t("test (os=mac, rust=stable)"),
                    t("test (os=windows, rust=stable)"),
                ]
            ),
        ]
    );
    let inst = p.instances();
    assert_eq!(inst[1].job, "test");
    assert_eq!(inst[1].matrix["os"], MatrixValue::String("linux".into()));
}

#[test]
fn short_forms_of_on_steps_artifacts_approval_and_concurrency() {
    let p = valid(
        "on: [push, manual]\njobs:\n  a:\n    artifacts: {paths: dist}\n    approval: true\n    concurrency: prod\n    runs-on: docker\n    steps: [make]\n",
    );
    assert!(
        p.on.push
            .as_ref()
            .is_some_and(|push| push.branches.is_empty())
    );
    assert!(p.on.manual);
    let a = &p.jobs["a"];
    assert_eq!(
        a.artifacts.as_ref().map(|x| x.paths.clone()),
        Some(vec!["dist".to_string()])
    );
    assert!(a.approval.as_ref().is_some_and(|x| x.message.is_none()));
    assert_eq!(
        a.concurrency
            .as_ref()
            .map(|c| (c.group.as_str(), c.cancel_in_progress)),
        Some(("prod", false))
    );
    assert_eq!(a.runs_on, ["docker"]);
    assert_eq!(a.steps[0].run, "make");
}

#[test]
fn a_file_without_on_runs_on_every_push_and_by_hand() {
    let p = valid("jobs:\n  a:\n    steps: [make]\n");
    assert!(p.on.push.is_some());
    assert!(p.on.manual);
    assert_eq!(p.instances().len(), 1);
    assert_eq!(p.instances()[0].id, "a");
}

#[test]
fn numbers_that_would_lose_digits_stay_as_written() {
    let p = valid("jobs:\n  a:\n    matrix:\n      v: [1.80, 1.5, 3, true]\n    steps: [make]\n");
    let ids: Vec<String> = p.instances().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, ["a (v=1.80)", "a (v=1.5)", "a (v=3)", "a (v=true)"]);
}

#[test]
fn schema_is_draft_2020_12_and_describes_jobs() {
    let s = ferry_config::schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["title"], "ferry.yml");
    assert!(s["$defs"]["Job"]["properties"]["runs-on"].is_object());
    assert!(s["$defs"]["Job"]["properties"].get("runs_on").is_none());
    assert_eq!(
        s["properties"]["name"]["type"], "string",
        "absent, not null, leaves a key out"
    );
    let push_forms = s["$defs"]["PushSpec"]["anyOf"].to_string();
    assert!(
        push_forms.contains(r#""type":"null""#),
        "`push:` alone means every push"
    );
}

#[test]
fn every_example_pipeline_of_the_repository_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return;
    };
    for dir in dirs.flatten() {
        let file = dir.path().join("ferry.yml");
        if file.is_file()
            && let Err(d) = ferry_config::load(&file)
        {
            panic!("{} is invalid:\n{d}", file.display());
        }
    }
}

/// The fenced ```yaml blocks of the user documentation.
fn doc_yaml_blocks() -> Vec<String> {
    let doc = include_str!("../../../../docs/pipeline.md");
    doc.split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_documentations_first_example_is_a_valid_pipeline() {
    let blocks = doc_yaml_blocks();
    let p = valid(&blocks[0]);
    assert_eq!(p.name, "shop");
    assert_eq!(p.instances().len(), 4);
}

#[test]
fn every_documented_condition_example_parses() {
    let mut seen = 0;
    for block in doc_yaml_blocks() {
        for line in block.lines() {
            let Some(cond) = line.trim().strip_prefix("if: ") else {
                continue;
            };
            let cond = cond.split("  #").next().unwrap_or(cond).trim();
            if let Err(e) = ferry_config::Expr::new(cond) {
                panic!("documented condition `{cond}` is rejected: {e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "found only {seen} documented conditions");
}
