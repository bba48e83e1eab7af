//! The `deploy:` section: a full valid file into the model, and one snapshot per
//! class of problem.

use crate::{errors, valid};
use ferry_config::{
    Analysis, BlueGreen, Canary, CanaryStep, Host, Rolling, Route, Run, Strategy, Target,
};
use insta::assert_snapshot;
use std::time::Duration;

const FULL: &str = r#"
jobs:
  build:
    steps: [cargo build --release]
  ship:
    needs: build
    deploy: staging
    steps: [echo shipping]
deploy:
  name: shop
  command: ./target/release/shop --port $PORT
  port: 8080
  env:
    DATABASE_URL: ${{ secrets.DATABASE_URL }}
    RUST_LOG: info
  healthcheck:
    path: /healthz
    interval: 1s
    timeout: 3s
    retries: 5
  smoke:
    - curl -fsS http://localhost:8080/healthz
    - name: Home page
      run: curl -fsS http://localhost:8080/
  migrate:
    - ./target/release/shop migrate
  environments:
    dev:
    staging:
      routes:
        - host: staging.shop.example.com
      strategy: blue-green
      env:
        RUST_LOG: debug
    canary:
      target: ssh
      hosts: [deploy@web1.example.com, "web2.example.com:2222", "root@[::1]"]
      routes:
        - { host: shop.example.com, path: /api }
      strategy:
        canary:
          steps:
            - { weight: 5, pause: 2m }
            - { weight: 25, pause: 10m }
            - { weight: 100 }
          analysis:
            max_error_rate: "0.5%"
            max_p95_latency: 300ms
            min_requests: 50
      approval:
        message: Ship to everyone?
    production:
      target: ssh
      hosts: deploy@web1.example.com
      strategy:
        rolling: { instances: 3, max_surge: 1, max_unavailable: 1 }
    blue:
      strategy:
        blue-green:
          verify: [curl -fsS http://localhost:8080/ready]
          auto_promote: false
          keep_old_for: 0s
    old:
      strategy: { recreate: }
"#;

#[test]
fn full_deploy_section_parses_into_the_model() {
    let p = valid(FULL);
    assert_eq!(p.jobs["ship"].deploy.as_deref(), Some("staging"));
    assert_eq!(p.jobs["build"].deploy, None);
    let d = p.deploy.expect("the file has a deploy section");
    assert_eq!(d.name, "shop");
    assert_eq!(
        d.run,
        Run::Command("./target/release/shop --port $PORT".into())
    );
    assert_eq!(d.port, Some(8080));
    assert_eq!(d.env["DATABASE_URL"], "${{ secrets.DATABASE_URL }}");
    assert_eq!(d.env["RUST_LOG"], "info");
    let h = d.healthcheck.expect("healthcheck");
    assert_eq!(h.path, "/healthz");
    assert_eq!(h.interval, Duration::from_secs(1));
    assert_eq!(h.timeout, Duration::from_secs(3));
    assert_eq!(h.retries, 5);
    let smoke: Vec<String> = d.smoke.iter().map(|s| s.display_name()).collect();
    assert_eq!(
        smoke,
        ["curl -fsS http://localhost:8080/healthz", "Home page"]
    );
    assert_eq!(d.migrate[0].run, "./target/release/shop migrate");

    let names: Vec<&str> = d.environments.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["dev", "staging", "canary", "production", "blue", "old"],
        "environments keep their promotion order"
    );
    let dev = &d.environments["dev"];
    assert_eq!(dev.target, Target::Process, "a command runs as a process");
    assert_eq!(dev.strategy, Strategy::Rolling(Rolling::default()));
    assert!(dev.hosts.is_empty() && dev.routes.is_empty() && dev.approval.is_none());

    let staging = &d.environments["staging"];
    assert_eq!(
        staging.routes,
        [Route {
            host: "staging.shop.example.com".into(),
            path: "/".into()
        }]
    );
    assert_eq!(staging.strategy, Strategy::BlueGreen(BlueGreen::default()));
    assert_eq!(staging.env["RUST_LOG"], "debug");

    let canary = &d.environments["canary"];
    assert_eq!(canary.target, Target::Ssh);
    assert_eq!(
        canary.hosts,
        [
            Host {
                user: Some("deploy".into()),
                host: "web1.example.com".into(),
                port: 22
            },
            Host {
                user: None,
                host: "web2.example.com".into(),
                port: 2222
            },
            Host {
                user: Some("root".into()),
                host: "::1".into(),
                port: 22
            },
        ]
    );
    assert_eq!(canary.routes[0].path, "/api");
    assert_eq!(
        canary.strategy,
        Strategy::Canary(Canary {
            steps: vec![
                CanaryStep {
                    weight: 5,
                    pause: Duration::from_secs(120)
                },
                CanaryStep {
                    weight: 25,
                    pause: Duration::from_secs(600)
                },
                CanaryStep {
                    weight: 100,
                    pause: Duration::ZERO
                },
            ],
            analysis: Analysis {
                max_error_rate: 0.005,
                max_p95_latency: Some(Duration::from_millis(300)),
                min_requests: 50,
            },
        })
    );
    assert_eq!(
        canary.approval.as_ref().and_then(|a| a.message.as_deref()),
        Some("Ship to everyone?")
    );

    let production = &d.environments["production"];
    assert_eq!(production.hosts.len(), 1, "one host may be a plain string");
    assert_eq!(
        production.strategy,
        Strategy::Rolling(Rolling {
            instances: 3,
            max_surge: 1,
            max_unavailable: 1
        })
    );
    let Strategy::BlueGreen(blue) = &d.environments["blue"].strategy else {
        panic!("expected blue-green");
    };
    assert_eq!(blue.verify[0].run, "curl -fsS http://localhost:8080/ready");
    assert!(!blue.auto_promote);
    assert_eq!(blue.keep_old_for, Duration::ZERO);
    assert_eq!(d.environments["old"].strategy, Strategy::Recreate);
}

#[test]
fn an_image_runs_in_docker_by_default_and_strategy_names_use_defaults() {
    let p = valid(
        "jobs:\n  a:\n    steps: [x]\ndeploy:\n  name: api\n  image: registry.example.com/api:${{ ferry.sha }}\n  environments:\n    staging:\n      strategy: canary\n",
    );
    let d = p.deploy.expect("deploy");
    assert_eq!(
        d.run,
        Run::Image("registry.example.com/api:${{ ferry.sha }}".into())
    );
    let staging = &d.environments["staging"];
    assert_eq!(staging.target, Target::Docker);
    let Strategy::Canary(c) = &staging.strategy else {
        panic!("expected canary");
    };
    assert_eq!(c, &Canary::default());
    assert_eq!(c.analysis.max_error_rate, 0.01);
}

#[test]
fn a_file_without_deploy_has_none() {
    assert!(valid("jobs:\n  a:\n    steps: [x]\n").deploy.is_none());
}

#[test]
fn schema_describes_the_deploy_section() {
    let s = ferry_config::schema();
    let deploy = &s["$defs"]["Deploy"];
    assert_eq!(deploy["additionalProperties"], false);
    assert_eq!(
        deploy["required"],
        serde_json::json!(["name", "environments"])
    );
    assert_eq!(s["$defs"]["Job"]["properties"]["deploy"]["type"], "string");
    assert_eq!(
        s["$defs"]["TargetName"]["enum"],
        serde_json::json!(["process", "docker", "ssh"])
    );
    assert_eq!(
        s["$defs"]["CanaryStep"]["properties"]["weight"]["maximum"],
        100
    );
    assert_eq!(
        deploy["oneOf"],
        serde_json::json!([{"required": ["command"]}, {"required": ["image"]}]),
        "editors flag both or neither of `command` and `image`"
    );
}

const HEAD: &str = "jobs:\n  a:\n    steps: [x]\n";

fn deploy_errors(section: &str) -> String {
    errors(&format!("{HEAD}{section}"))
}

#[test]
fn reports_unknown_deploy_keys_with_did_you_mean() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  comand: ./shop\n  command: ./shop\n  helthcheck: {path: /}\n  environments:\n    staging:\n      taget: process\n      strategy:\n        canary:\n          steps: [{weight: 10, paus: 1m}]\n          analysis: {max_error: 0.1}\n"
    ));
}

#[test]
fn reports_wrong_types_in_deploy() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  env: [A]\n  smoke: curl\n  environments:\n    staging:\n      routes: shop.example.com\n      hosts: 5\n      strategy:\n        blue-green: {auto_promote: yes please}\n"
    ));
}

#[test]
fn reports_both_or_neither_of_command_and_image() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  image: shop:1\n  environments: {staging: }\n"
    ));
    assert_snapshot!(
        "neither_command_nor_image",
        deploy_errors("deploy:\n  name: shop\n  environments: {staging: }\n")
    );
}

#[test]
fn reports_invalid_ports() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  port: 70000\n  environments:\n    staging:\n      target: ssh\n      hosts: [deploy@web1:0, web2:ssh]\n"
    ));
}

#[test]
fn reports_invalid_durations() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  healthcheck:\n    path: /healthz\n    interval: 0s\n    timeout: soon\n  environments:\n    staging:\n      strategy:\n        canary:\n          steps: [{weight: 10, pause: five minutes}]\n          analysis: {max_p95_latency: 300}\n"
    ));
}

#[test]
fn reports_canary_weights_that_do_not_rise_or_exceed_100() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  environments:\n    staging:\n      strategy:\n        canary:\n          steps:\n            - {weight: 20, pause: 1m}\n            - {weight: 10, pause: 1m}\n            - {weight: 150}\n            - {pause: 1m}\n"
    ));
}

#[test]
fn reports_error_rates_out_of_range() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  environments:\n    a:\n      strategy: {canary: {analysis: {max_error_rate: 5}}}\n    b:\n      strategy: {canary: {analysis: {max_error_rate: \"150%\"}}}\n    c:\n      strategy: {canary: {analysis: {max_error_rate: often}}}\n"
    ));
}

#[test]
fn reports_unknown_strategy_and_target_names() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  image: shop:1\n  environments:\n    a:\n      target: dokcer\n      strategy: bluegreen\n    b:\n      target: k8s\n      strategy: {canery: {}}\n    c:\n      strategy: {rolling: {}, recreate: }\n    d:\n      target: process\n"
    ));
}

#[test]
fn reports_rolling_settings_that_cannot_deploy() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  environments:\n    a:\n      strategy: {rolling: {max_surge: 0}}\n    b:\n      strategy: {rolling: {instances: 2, max_unavailable: 2}}\n"
    ));
}

#[test]
fn reports_ssh_targets_without_hosts_and_invalid_hosts() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  environments:\n    production:\n      target: ssh\n    local:\n      hosts: [web1]\n    remote:\n      target: ssh\n      hosts: [\"@web1\", \"deploy@web 1\"]\n"
    ));
}

#[test]
fn reports_invalid_routes_and_routes_without_a_port() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  command: ./shop\n  healthcheck: {path: healthz}\n  environments:\n    staging:\n      routes:\n        - host: https://shop.example.com\n        - path: api\n          host: shop.example.com\n        - path: /\n"
    ));
    assert_snapshot!(
        "routes_without_a_port",
        deploy_errors(
            "deploy:\n  name: shop\n  command: ./shop\n  environments:\n    staging:\n      routes: [{host: shop.example.com}]\n"
        )
    );
}

#[test]
fn reports_a_job_deploying_to_a_missing_environment() {
    assert_snapshot!(errors(
        "jobs:\n  ship:\n    deploy: staing\n    steps: [x]\n  prod:\n    deploy: live\n    steps: [x]\ndeploy:\n  name: shop\n  command: ./shop\n  environments: {staging: , production: }\n"
    ));
    assert_snapshot!(
        "job_deploys_without_a_deploy_section",
        errors("jobs:\n  ship:\n    deploy: staging\n    steps: [x]\n")
    );
}

#[test]
fn reports_invalid_templates_in_deploy() {
    assert_snapshot!(deploy_errors(
        "deploy:\n  name: shop\n  image: shop:${{ ferry.sha\n  env:\n    TOKEN: ${{ secrts.TOKEN }}\n    OS: ${{ matrix.os }}\n  environments:\n    staging:\n      env:\n        A: ${{ 1 + }}\n"
    ));
}

#[test]
fn reports_a_deploy_without_name_or_environments_and_bad_names() {
    assert_snapshot!(deploy_errors("deploy:\n  command: ./shop\n"));
    assert_snapshot!(
        "bad_names_and_empty_environments",
        deploy_errors("deploy:\n  name: my shop\n  command: ./shop\n  environments: {}\n")
    );
}

#[test]
fn the_documentations_first_example_is_valid() {
    let doc = include_str!("../../../../docs/deploy.md");
    let first = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/deploy.md has a yaml example");
    let p = valid(first);
    let d = p.deploy.expect("the example has a deploy section");
    assert_eq!(p.jobs["ship"].deploy.as_deref(), Some("staging"));
    let names: Vec<&str> = d.environments.keys().map(String::as_str).collect();
    assert_eq!(names, ["staging", "production"]);
    assert_eq!(d.environments["production"].hosts[1].port, 2222);
}

#[test]
fn odd_deploy_sections_are_reported_not_panicked_on() {
    let odd = [
        "deploy: 5\n",
        "deploy: []\n",
        "deploy:\n  name: [a]\n  command: {a: 1}\n  environments: [staging]\n",
        "deploy:\n  name: a\n  command: x\n  environments: {a: 5, b: [], c: {strategy: []}}\n",
        "deploy:\n  name: a\n  command: x\n  environments: {a: {strategy: {canary: 5}}, b: {strategy: {}}}\n",
        "deploy:\n  name: a\n  command: x\n  environments: {a: {strategy: {canary: {steps: [5, {}], analysis: []}}}}\n",
        "deploy:\n  name: a\n  command: x\n  environments: {a: {routes: [5, {}], hosts: [[x]]}}\n",
        "deploy:\n  name: a\n  command: x\n  healthcheck: /healthz\n  environments: {a: {strategy: {recreate: {}}}}\n",
        "deploy:\n  name: a\n  command: x\n  healthcheck: {path: /, retries: 0}\n  environments: {a: {strategy: {rolling: {instances: 0}}}}\n",
    ];
    for section in odd {
        let rendered = deploy_errors(section);
        assert!(
            rendered.starts_with("ferry.yml:"),
            "{section:?} gave {rendered}"
        );
    }
}
