//! The `docker` target against this machine's Docker engine, directly and as a remote
//! engine reached over SSH through one of the lab's hosts (which shares this
//! machine's `/var/run/docker.sock`).

use super::lab::Lab;
use super::{get, get_once, spec, unique_service};
use crate::support::busybox_image;
use ferry_engine::deploy::targets::docker::{DockerOptions, DockerTarget};
use ferry_engine::deploy::targets::{Artifact, Instance, InstanceSpec, Target, TargetError};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

const HTTPD: &str =
    "mkdir -p /www && echo \"$GREETING\" > /www/index.html && exec httpd -f -p \"$PORT\" -h /www";

fn web_spec(service: &str, release: &str, index: u32) -> InstanceSpec {
    let mut s = spec(
        service,
        release,
        index,
        Artifact::Image(busybox_image().to_string()),
        Some(HTTPD),
        None,
    );
    s.port = Some(8080);
    s.env
        .insert("GREETING".into(), format!("hello from {service} {release}"));
    s
}

fn options() -> DockerOptions {
    DockerOptions {
        health_interval: Duration::from_secs(1),
        leftover_grace: Duration::from_secs(1),
        ..Default::default()
    }
}

/// `docker inspect -f FORMAT NAME`, None when there is no such container.
fn inspect(name: &str, format: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, name])
        .output()
        .expect("the docker CLI runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn container(i: &Instance) -> String {
    format!("ferry-{}", i.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_labelled_container_with_limits_and_stops_it() {
    let service = unique_service("dweb");
    let t = DockerTarget::new(options());
    let s = web_spec(&service, "v1", 0);
    let inst = t.start(&s).await.expect("the container starts");
    assert_eq!(inst.name, format!("{service}-staging-v1-0"));
    assert_eq!(
        inst.addr.ip(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "published on 127.0.0.1"
    );
    assert_ne!(inst.addr.port(), 8080, "a port Docker picked");
    assert_eq!(
        get(inst.addr, "/index.html"),
        format!("hello from {service} v1\n"),
        "env reaches the container"
    );
    let name = container(&inst);
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"ferry.service\"}} {{index .Config.Labels \"ferry.environment\"}} {{index .Config.Labels \"ferry.release\"}} {{index .Config.Labels \"ferry.instance\"}}").as_deref(),
        Some(format!("{service} staging v1 {}", inst.name).as_str())
    );
    assert_eq!(
        inspect(
            &name,
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}"
        )
        .as_deref(),
        Some("unless-stopped 1073741824 4096")
    );
    let env = inspect(&name, "{{json .Config.Env}}").expect("env");
    assert!(env.contains("\"PORT=8080\""), "{env}");
    // The container's own health check probes the health path with busybox wget.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let h = inspect(&name, "{{.State.Health.Status}}").expect("health");
        if h == "healthy" {
            break;
        }
        assert!(Instant::now() < until, "not healthy after 10 s: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(t.alive(&inst).await);

    t.stop(&inst, Duration::from_secs(2)).await.expect("stop");
    assert_eq!(inspect(&name, "{{.Id}}"), None, "the container is removed");
    assert!(!t.alive(&inst).await);
    assert!(get_once(inst.addr, "/index.html").is_err());
    t.stop(&inst, Duration::from_secs(1))
        .await
        .expect("stopping twice succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_removes_containers_not_kept_and_start_replaces_a_leftover() {
    let service = unique_service("dsweep");
    let t = DockerTarget::new(options());
    let keep = t.start(&web_spec(&service, "v2", 0)).await.expect("start");
    let old = t.start(&web_spec(&service, "v1", 0)).await.expect("start");
    let other_service = unique_service("dother");
    let other = t
        .start(&web_spec(&other_service, "v1", 0))
        .await
        .expect("start");

    let swept = t
        .sweep(&service, "staging", std::slice::from_ref(&keep))
        .await
        .expect("sweep");
    assert_eq!(swept, vec![old.name.clone()]);
    assert_eq!(inspect(&container(&old), "{{.Id}}"), None);
    assert!(t.alive(&keep).await && t.alive(&other).await);

    // Starting under a name that is taken replaces the old container.
    let first_id = inspect(&container(&keep), "{{.Id}}").expect("id");
    let again = t
        .start(&web_spec(&service, "v2", 0))
        .await
        .expect("start again");
    let second_id = inspect(&container(&again), "{{.Id}}").expect("id");
    assert_ne!(first_id, second_id);
    assert_eq!(
        get(again.addr, "/index.html"),
        format!("hello from {service} v2\n")
    );

    let swept = t.sweep(&service, "staging", &[]).await.expect("sweep all");
    assert_eq!(swept, vec![again.name.clone()]);
    t.stop(&other, Duration::from_secs(1)).await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarballs_and_images_without_port_are_refused() {
    let t = DockerTarget::new(options());
    let mut s = web_spec(&unique_service("dbad"), "v1", 0);
    s.port = None;
    let err = t.start(&s).await.expect_err("no port");
    assert!(
        matches!(&err, TargetError::Start(m) if m.contains("deploy.port")),
        "{err:?}"
    );
    s.port = Some(8080);
    s.artifact = Artifact::Image("ferry-test/does-not-exist:1".into());
    let err = t.start(&s).await.expect_err("no such image");
    assert!(
        matches!(&err, TargetError::Start(m) if m.contains("`ferry-test/does-not-exist:1` is not in the local Docker engine")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_containers_on_a_remote_engine_over_ssh() {
    let mut lab = Lab::start(1);
    let host = lab.hosts[0].host();
    let service = unique_service("dremote");
    // The lab host's engine is this machine's: its published ports are on this
    // namespace, so they are reached at 127.0.0.1, not at the host's address.
    let opts = DockerOptions {
        hosts: vec![host.clone()],
        ssh: lab.ssh_config(),
        publish_addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ..options()
    };
    let t = DockerTarget::new(opts.clone());
    let mut s = web_spec(&service, "v1", 0);
    s.host = Some(host.clone());
    let inst = t
        .start(&s)
        .await
        .expect("start through the forwarded socket");
    assert_eq!(inst.handle["host"]["host"], host.host.as_str());
    assert_eq!(
        get(inst.addr, "/index.html"),
        format!("hello from {service} v1\n")
    );
    assert_eq!(
        inspect(
            &container(&inst),
            "{{range $p, $b := .HostConfig.PortBindings}}{{(index $b 0).HostIp}}{{end}}"
        )
        .as_deref(),
        Some("0.0.0.0"),
        "a remote engine publishes on every address of its host"
    );
    assert!(t.alive(&inst).await);
    let swept = t
        .sweep(&service, "staging", &[])
        .await
        .expect("sweep over ssh");
    assert_eq!(swept, vec![inst.name.clone()]);
    assert_eq!(inspect(&container(&inst), "{{.Id}}"), None);

    // With the host down, a new target cannot forward the engine and says which host.
    lab.hosts[0].stop_sshd();
    let t = DockerTarget::new(opts);
    let err = t.start(&s).await.expect_err("the host is down");
    assert!(
        matches!(&err, TargetError::Unreachable(m) if m.contains(&format!("root@{}:22", host.host))),
        "{err:?}"
    );
}
