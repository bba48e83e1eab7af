//! Each strategy moves traffic to the new release and stops the old one.

use super::support::{Lab, yml};
use ferry_types::DeployState;
use std::collections::BTreeSet;

const BLUE_GREEN: &str = "        blue-green:\n          keep_old_for: 0s";

/// Every answer of `n` requests through the proxy, as a set.
async fn answers(lab: &Lab, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let (status, body) = lab.get("/").await.expect("the proxy answers");
        assert_eq!(status, 200, "{body}");
        seen.insert(body);
    }
    seen
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_to_the_new_release_and_stops_the_old() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, "")).await;
    let d = lab.deploy(v1.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(answers(&lab, 5).await, set(&["release=one"]));

    let v2 = lab.release(&yml("two", "ok", BLUE_GREEN, "")).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(answers(&lab, 5).await, set(&["release=two"]));
    lab.wait_stopped("web-prod-v1-0").await;
    let steps = lab.steps(d.id).await;
    assert!(
        steps.contains("[shift] Switching all traffic to v2."),
        "{steps}"
    );
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(live.release_number, 2);
    assert!(live.previous.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_replaces_three_instances_a_batch_at_a_time() {
    let lab = Lab::new().await;
    let rolling = "        rolling:\n          instances: 3\n          max_surge: 1\n          max_unavailable: 0";
    let v1 = lab.release(&yml("one", "ok", rolling, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(live.instances.as_array().map(Vec::len), Some(3));

    let v2 = lab.release(&yml("two", "ok", rolling, "")).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(answers(&lab, 9).await, set(&["release=two"]));
    let steps = lab.steps(d.id).await;
    for n in 1..=3 {
        assert!(
            steps.contains(&format!("[shift] {n} of 3 instances run v2.")),
            "{steps}"
        );
    }
    for i in 0..3 {
        lab.wait_stopped(&format!("web-prod-v1-{i}")).await;
    }
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(live.release_number, 2);
    assert_eq!(live.instances.as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_passes_its_steps_and_takes_all_traffic() {
    let lab = Lab::new().await;
    let canary = "        canary:\n          steps:\n            - { weight: 20, pause: 300ms }\n            - { weight: 60, pause: 300ms }\n          analysis:\n            min_requests: 5";
    let v1 = lab.release(&yml("one", "ok", canary, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "ok", canary, "")).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(answers(&lab, 5).await, set(&["release=two"]));
    let steps = lab.steps(d.id).await;
    assert!(
        steps.contains("[shift] Sending 20% of requests to v2 for 300ms."),
        "{steps}"
    );
    assert!(
        steps.contains("[shift] Sending 60% of requests to v2 for 300ms."),
        "{steps}"
    );
    lab.wait_stopped("web-prod-v1-0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_the_old_release_then_starts_the_new() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", "        recreate", "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "ok", "        recreate", "")).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(answers(&lab, 3).await, set(&["release=two"]));
    assert!(!super::support::running(
        &lab.instance_dir("web-prod-v1-0").join("pid")
    ));
}
