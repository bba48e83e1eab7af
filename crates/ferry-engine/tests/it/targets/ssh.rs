//! The `ssh` target against two real sshd hosts in network namespaces. This machine's
//! PID 1 is not systemd, so instances run as supervised background processes (the
//! fallback); the systemd path is chosen only on hosts where systemd runs.

use super::lab::Lab;
use super::{get, get_once, process_runs, spec, tarball, unique_service};
use ferry_engine::deploy::targets::ssh::{SshTarget, SshTargetOptions};
use ferry_engine::deploy::targets::{Target, TargetError};
use std::time::{Duration, Instant};

const HTTPD: &str = "exec busybox httpd -f -p \"$PORT\" -h .";

fn target(lab: &Lab) -> SshTarget {
    SshTarget::with_options(
        lab.hosts.iter().map(|h| h.host()).collect(),
        lab.ssh_config(),
        SshTargetOptions {
            leftover_grace: Duration::from_secs(2),
            ..Default::default()
        },
    )
}

fn pid(i: &ferry_engine::deploy::targets::Instance) -> u64 {
    i.handle["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("a supervised process's handle has its pid: {}", i.handle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_tarball_release_on_two_hosts_and_stops_it() {
    let lab = Lab::start(2);
    let t = target(&lab);
    let tmp = tempfile::tempdir().expect("tempdir");
    let body = format!("release one of {}\n", unique_service("body"));
    let artifact = tarball(tmp.path(), &body);
    let service = unique_service("web");

    let mut instances = Vec::new();
    for (i, h) in lab.hosts.iter().enumerate() {
        let s = spec(
            &service,
            "v1",
            i as u32,
            artifact.clone(),
            Some(HTTPD),
            Some(h.host()),
        );
        let inst = t.start(&s).await.expect("the instance starts");
        assert_eq!(
            inst.addr.ip().to_string(),
            h.addr.to_string(),
            "reached at the host's address"
        );
        assert_eq!(
            inst.handle["mode"], "process",
            "no systemd here: {}",
            inst.handle
        );
        instances.push(inst);
    }
    for inst in &instances {
        assert_eq!(
            get(inst.addr, "/index.html"),
            body,
            "served from the uploaded release"
        );
        assert!(t.alive(inst).await, "{} is alive", inst.name);
        assert!(
            process_runs(pid(inst)),
            "the supervisor of {} runs",
            inst.name
        );
    }
    // Each host unpacked the release once, under its own home.
    let hex = match &artifact {
        ferry_engine::deploy::targets::Artifact::Tarball { digest, .. } => {
            digest.trim_start_matches("sha256:").to_string()
        }
        _ => unreachable!("a tarball"),
    };
    for h in &lab.hosts {
        let r = h.home.join(".ferry/releases").join(&hex);
        assert!(
            r.join(".ferry-complete").exists(),
            "{} has the release",
            r.display()
        );
        assert!(r.join("index.html").exists());
    }

    // A second instance on the first host reuses the upload and gets its own port.
    let s = spec(
        &service,
        "v1",
        2,
        artifact.clone(),
        Some(HTTPD),
        Some(lab.hosts[0].host()),
    );
    let third = t.start(&s).await.expect("a second instance on one host");
    assert_ne!(third.addr, instances[0].addr);
    assert_eq!(get(third.addr, "/index.html"), body);
    instances.push(third);

    for inst in &instances {
        let started = Instant::now();
        t.stop(inst, Duration::from_secs(5)).await.expect("stop");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "httpd stops on SIGTERM, well within the grace"
        );
        assert!(
            !process_runs(pid(inst)),
            "the process of {} is gone",
            inst.name
        );
        assert!(!t.alive(inst).await, "{} is no longer alive", inst.name);
        assert!(
            get_once(inst.addr, "/index.html").is_err(),
            "nothing listens at {}",
            inst.addr
        );
    }
    // Stopping again is fine: it is already gone.
    t.stop(&instances[0], Duration::from_secs(1))
        .await
        .expect("stopping twice succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_stops_leftovers_and_keeps_the_rest() {
    let lab = Lab::start(2);
    let t = target(&lab);
    let tmp = tempfile::tempdir().expect("tempdir");
    let artifact = tarball(tmp.path(), "swept\n");
    let service = unique_service("sweep");
    let keep = t
        .start(&spec(
            &service,
            "v2",
            0,
            artifact.clone(),
            Some(HTTPD),
            Some(lab.hosts[0].host()),
        ))
        .await
        .expect("start the kept one");
    let left_a = t
        .start(&spec(
            &service,
            "v1",
            0,
            artifact.clone(),
            Some(HTTPD),
            Some(lab.hosts[0].host()),
        ))
        .await
        .expect("start a leftover on host 1");
    let left_b = t
        .start(&spec(
            &service,
            "v1",
            1,
            artifact.clone(),
            Some(HTTPD),
            Some(lab.hosts[1].host()),
        ))
        .await
        .expect("start a leftover on host 2");
    let other = t
        .start(&spec(
            &unique_service("other"),
            "v1",
            0,
            artifact.clone(),
            Some(HTTPD),
            Some(lab.hosts[1].host()),
        ))
        .await
        .expect("start another service's instance");

    let mut swept = t
        .sweep(&service, "staging", std::slice::from_ref(&keep))
        .await
        .expect("sweep");
    swept.sort();
    let mut expected = vec![left_a.name.clone(), left_b.name.clone()];
    expected.sort();
    assert_eq!(swept, expected);
    assert!(
        !t.alive(&left_a).await && !t.alive(&left_b).await,
        "leftovers stopped"
    );
    assert!(!process_runs(pid(&left_a)) && !process_runs(pid(&left_b)));
    assert!(t.alive(&keep).await, "the kept instance still runs");
    assert_eq!(get(keep.addr, "/index.html"), "swept\n");
    assert!(
        t.alive(&other).await,
        "another service's instance is not swept"
    );
    assert!(
        t.sweep(&service, "staging", std::slice::from_ref(&keep))
            .await
            .expect("sweep")
            .is_empty()
    );

    // A replacement with the same name replaces the old process.
    let again = t
        .start(&spec(
            &service,
            "v2",
            0,
            artifact,
            Some(HTTPD),
            Some(lab.hosts[0].host()),
        ))
        .await
        .expect("start again under the same name");
    assert!(
        !process_runs(pid(&keep)),
        "the leftover of the same name was stopped"
    );
    assert_eq!(get(again.addr, "/index.html"), "swept\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alive_follows_a_crashed_process_and_the_supervisor_restarts_failures() {
    let lab = Lab::start(1);
    let t = target(&lab);
    let tmp = tempfile::tempdir().expect("tempdir");
    let artifact = tarball(tmp.path(), "x\n");
    let service = unique_service("crash");
    let h = lab.hosts[0].host();
    // Fails the first time (no marker yet), serves the second: the supervisor restarts it.
    let flaky = "if [ ! -f ../../marker-$PORT ]; then touch ../../marker-$PORT; exit 3; fi; exec busybox httpd -f -p \"$PORT\" -h .";
    let inst = t
        .start(&spec(
            &service,
            "v1",
            0,
            artifact.clone(),
            Some(flaky),
            Some(h.clone()),
        ))
        .await
        .expect("start");
    assert_eq!(
        get(inst.addr, "/index.html"),
        "x\n",
        "served after one restart"
    );
    assert!(t.alive(&inst).await);
    // Killing the supervisor's whole group from outside: alive says so.
    let p = pid(&inst) as i32;
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{p}")])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "kill the process group {p}");
    let until = Instant::now() + Duration::from_secs(5);
    while t.alive(&inst).await {
        assert!(
            Instant::now() < until,
            "alive still true 5 s after the process was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.stop(&inst, Duration::from_secs(1))
        .await
        .expect("stop a dead instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_down_is_unreachable_with_its_name() {
    let mut lab = Lab::start(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let artifact = tarball(tmp.path(), "down\n");
    let service = unique_service("down");
    let h = lab.hosts[0].host();
    let t = target(&lab);
    let inst = t
        .start(&spec(
            &service,
            "v1",
            0,
            artifact.clone(),
            Some(HTTPD),
            Some(h.clone()),
        ))
        .await
        .expect("start while the host is up");
    lab.hosts[0].stop_sshd();
    // A fresh target: no multiplexed connection left over from the one above.
    let t = target(&lab);
    let started = Instant::now();
    let err = t
        .start(&spec(
            &service,
            "v1",
            1,
            artifact,
            Some(HTTPD),
            Some(h.clone()),
        ))
        .await
        .expect_err("the host is down");
    let TargetError::Unreachable(msg) = &err else {
        panic!("expected Unreachable, got {err:?}");
    };
    assert!(
        msg.contains(&format!("root@{}:22", h.host)),
        "names the host: {msg}"
    );
    assert!(msg.contains("Connection refused"), "says why: {msg}");
    assert!(started.elapsed() < Duration::from_secs(8), "fails fast");
    assert!(
        !t.alive(&inst).await,
        "an unreachable host's instance is not known alive"
    );
    let err = t
        .sweep(&service, "staging", &[])
        .await
        .expect_err("sweep cannot reach the host");
    assert!(
        matches!(err, TargetError::Unreachable(ref m) if m.contains(&h.host)),
        "{err:?}"
    );
    let err = t
        .stop(&inst, Duration::from_secs(1))
        .await
        .expect_err("stop cannot reach the host");
    assert!(matches!(err, TargetError::Unreachable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_an_image_release_through_the_hosts_docker() {
    let lab = Lab::start(1);
    let h = lab.hosts[0].host();
    // The lab host's Docker is this machine's: what it publishes is reached here.
    let t = SshTarget::with_options(
        vec![h.clone()],
        lab.ssh_config(),
        SshTargetOptions {
            leftover_grace: Duration::from_secs(1),
            docker_publish_addr: Some("127.0.0.1".parse().expect("an address")),
            ..Default::default()
        },
    );
    let service = unique_service("simg");
    let mut s = spec(
        &service,
        "v1",
        0,
        ferry_engine::deploy::targets::Artifact::Image(crate::support::busybox_image().into()),
        Some(
            "mkdir -p /www && echo \"$GREETING\" > /www/index.html && exec httpd -f -p \"$PORT\" -h /www",
        ),
        Some(h.clone()),
    );
    s.port = Some(8080);
    s.env
        .insert("GREETING".into(), "it's \"quoted\" $HOME".into());
    let inst = t.start(&s).await.expect("docker run over ssh");
    assert_eq!(inst.handle["mode"], "docker");
    assert_eq!(
        get(inst.addr, "/index.html"),
        "it's \"quoted\" $HOME\n",
        "env arrives verbatim"
    );
    let name = format!("ferry-{}", inst.name);
    let labels = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{index .Config.Labels \"ferry.service\"}} {{index .Config.Labels \"ferry.instance\"}} {{.HostConfig.RestartPolicy.Name}}", &name])
        .output()
        .expect("docker inspect");
    assert_eq!(
        String::from_utf8_lossy(&labels.stdout).trim(),
        format!("{service} {} unless-stopped", inst.name)
    );
    assert!(t.alive(&inst).await);
    let swept = t.sweep(&service, "staging", &[]).await.expect("sweep");
    assert_eq!(swept, vec![inst.name.clone()]);
    assert!(!t.alive(&inst).await);
    let gone = std::process::Command::new("docker")
        .args(["inspect", &name])
        .output()
        .expect("docker inspect");
    assert!(!gone.status.success(), "the container is removed");
}

/// The digest's hex of a tarball artifact.
fn hex_of(artifact: &ferry_engine::deploy::targets::Artifact) -> String {
    match artifact {
        ferry_engine::deploy::targets::Artifact::Tarball { digest, .. } => {
            digest.trim_start_matches("sha256:").to_string()
        }
        _ => unreachable!("a tarball"),
    }
}

/// The entries of a host's `~/.ferry/releases`, sorted.
fn releases_on(home: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.join(".ferry/releases"))
        .expect("the releases directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_deploy_only_releases_in_use_and_the_newest_three_stay_on_the_host() {
    let lab = Lab::start(1);
    let host = &lab.hosts[0];
    let t = target(&lab);
    let tmp = tempfile::tempdir().expect("tempdir");
    let release = |k: &str| {
        let dir = tmp.path().join(k);
        std::fs::create_dir_all(&dir).expect("a directory per release");
        tarball(&dir, &format!("release {k}\n"))
    };
    // Another service on the same host keeps running the oldest release of all.
    let other_artifact = release("other");
    let other = t
        .start(&spec(
            &unique_service("other"),
            "v1",
            0,
            other_artifact.clone(),
            Some(HTTPD),
            Some(host.host()),
        ))
        .await
        .expect("start the other service");

    // Seven blue-green deploys of one service: each starts v{k}, keeps v{k-1} warm
    // and stops v{k-2}; then the target tidies the host.
    let service = unique_service("prune");
    let mut artifacts = Vec::new();
    let mut running: Vec<ferry_engine::deploy::targets::Instance> = Vec::new();
    for k in 1..=7 {
        let a = release(&format!("v{k}"));
        let inst = t
            .start(&spec(
                &service,
                &format!("v{k}"),
                0,
                a.clone(),
                Some(HTTPD),
                Some(host.host()),
            ))
            .await
            .expect("start the new release");
        artifacts.push(a);
        running.push(inst);
        if running.len() > 2 {
            let old = running.remove(0);
            t.stop(&old, Duration::from_secs(2)).await.expect("stop");
        }
        t.after_switch().await.expect("tidy the host");
    }

    // In use: v7 (live), v6 (warm), the other service's; kept: v5, v4, v3.
    let mut expected: Vec<String> = artifacts[2..].iter().map(hex_of).collect();
    expected.push(hex_of(&other_artifact));
    expected.sort();
    assert_eq!(
        releases_on(&host.home),
        expected,
        "v1 and v2 are removed; nothing else is left behind"
    );
    for (inst, body) in running.iter().zip(["release v6\n", "release v7\n"]) {
        assert!(t.alive(inst).await, "{} still runs", inst.name);
        assert_eq!(get(inst.addr, "/index.html"), body);
    }
    assert!(t.alive(&other).await, "the other service still runs");
    assert_eq!(get(other.addr, "/index.html"), "release other\n");

    // Rolling back to v3 marks it used: v6 stops and every unused release stays.
    let back = t
        .start(&spec(
            &service,
            "v3",
            1,
            artifacts[2].clone(),
            Some(HTTPD),
            Some(host.host()),
        ))
        .await
        .expect("roll back to v3");
    t.stop(&running[0], Duration::from_secs(2))
        .await
        .expect("stop v6");
    t.after_switch().await.expect("tidy the host");
    assert_eq!(releases_on(&host.home).len(), 6, "v3 to v7 and the other");
    assert_eq!(get(back.addr, "/index.html"), "release v3\n");
    // Then v8 replaces both: of the unused ones, v3 (used last), v7 and v6 stay.
    let a8 = release("v8");
    let v8 = t
        .start(&spec(
            &service,
            "v8",
            0,
            a8.clone(),
            Some(HTTPD),
            Some(host.host()),
        ))
        .await
        .expect("start v8");
    for old in [&back, &running[1]] {
        t.stop(old, Duration::from_secs(2)).await.expect("stop");
    }
    t.after_switch().await.expect("tidy the host");
    let mut expected: Vec<String> = [
        &artifacts[2],
        &artifacts[5],
        &artifacts[6],
        &a8,
        &other_artifact,
    ]
    .into_iter()
    .map(hex_of)
    .collect();
    expected.sort();
    assert_eq!(
        releases_on(&host.home),
        expected,
        "v4 and v5 go; v3 stays, used more recently than they were"
    );
    assert_eq!(get(v8.addr, "/index.html"), "release v8\n");
    assert!(t.alive(&other).await, "the other service still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_instances_log_is_rotated_keeping_one_previous_file() {
    let lab = Lab::start(1);
    let host = &lab.hosts[0];
    let t = SshTarget::with_options(
        vec![host.host()],
        lab.ssh_config(),
        SshTargetOptions {
            leftover_grace: Duration::from_secs(2),
            log_max_bytes: 4096,
            ..Default::default()
        },
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let chatty = "i=0; while :; do j=0; while [ $j -lt 20 ]; do i=$((i+1)); j=$((j+1)); echo \"line $i\"; done; sleep 0.02; done";
    let inst = t
        .start(&spec(
            &unique_service("chatty"),
            "v1",
            0,
            tarball(tmp.path(), "x\n"),
            Some(chatty),
            Some(host.host()),
        ))
        .await
        .expect("start");
    let dir = host.home.join(".ferry/instances").join(&inst.name);
    let (log, previous) = (dir.join("output.log"), dir.join("output.log.1"));
    let numbers = |p: &std::path::Path| -> Vec<u64> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
            .collect()
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("a first rotation", &|| previous.exists());
    let first = numbers(&previous).first().copied();
    wait("a second rotation", &|| {
        numbers(&previous).first().copied() != first
    });
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the instance directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("output"))
        .collect();
    files.sort();
    assert_eq!(files, ["output.log", "output.log.1"], "one previous file");
    let size = std::fs::metadata(&previous).expect("output.log.1").len();
    assert!(
        size > 4096 && size < 256 * 1024,
        "rotated past the limit, within a check's worth of output: {size} bytes"
    );
    // The output goes on in the emptied file, after what output.log.1 holds.
    let (before, after) = (numbers(&previous), numbers(&log));
    assert!(
        before.windows(2).all(|w| w[1] == w[0] + 1),
        "output.log.1 is whole"
    );
    wait("more output", &|| numbers(&log).len() > after.len());
    let after = numbers(&log);
    assert!(
        after.first() > before.last(),
        "output.log continues output.log.1: {:?} then {:?}",
        before.last(),
        after.first()
    );
    assert!(
        t.alive(&inst).await,
        "rotating did not disturb the instance"
    );
    t.stop(&inst, Duration::from_secs(2)).await.expect("stop");
    assert!(!process_runs(pid(&inst)), "the supervisor is gone");
    assert!(!dir.exists(), "the instance directory is removed");
}
