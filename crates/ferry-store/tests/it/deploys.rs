use crate::both;
use crate::fixtures::project;
use ferry_store::db::{
    DbError, Deploy, DeployQuery, Event, EventQuery, NewDeploy, NewRelease, Release,
    ReleaseArtifact, Store, Switch, now_ms,
};
use ferry_types::{DeployKind, DeployPhase, DeployState, EventKind};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn new_release(project: &str, service: &str, sha: &str) -> NewRelease {
    NewRelease {
        project: project.to_owned(),
        service: service.to_owned(),
        sha: sha.to_owned(),
        artifact: ReleaseArtifact::Image {
            reference: format!("{service}:{sha}"),
        },
        config: format!("deploy:\n  name: {service}\n  image: {service}\n"),
        env: BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]),
        run_id: None,
        created_by: "ferry".to_owned(),
    }
}

async fn release(
    store: &Store,
    project: &str,
    service: &str,
    sha: &str,
) -> Result<Release, DbError> {
    store
        .create_release(&new_release(project, service, sha))
        .await
}

fn new_deploy(service: &str, environment: &str, release_id: i64) -> NewDeploy {
    NewDeploy {
        service: service.to_owned(),
        environment: environment.to_owned(),
        release_id,
        kind: DeployKind::Deploy,
        requested_by: "alice".to_owned(),
        run_id: None,
        job: None,
        needs_approval: false,
    }
}

async fn deploy(
    store: &Store,
    service: &str,
    environment: &str,
    release_id: i64,
) -> Result<Deploy, DbError> {
    store
        .create_deploy(&new_deploy(service, environment, release_id))
        .await
}

/// Deploys `release_id` to `environment` all the way: queued, claimed, switched with
/// `keep_previous`, finished as succeeded.
async fn deploy_live(
    store: &Store,
    service: &str,
    environment: &str,
    release_id: i64,
    keep_previous: Option<(serde_json::Value, i64)>,
) -> Result<Deploy, Box<dyn std::error::Error + Send + Sync>> {
    let queued = deploy(store, service, environment, release_id).await?;
    let claimed = store
        .claim_deploy("server-a", LEASE)
        .await?
        .ok_or("a queued deploy to claim")?;
    assert_eq!(claimed.id, queued.id);
    let instances = json!([{ "release_id": release_id, "port": 9000 + release_id }]);
    store
        .switch_live(
            claimed.id,
            "server-a",
            &Switch {
                instances,
                keep_previous,
            },
        )
        .await?;
    Ok(store
        .finish_deploy(claimed.id, "server-a", DeployState::Succeeded, None)
        .await?)
}

async fn events_of(store: &Store, kind: EventKind) -> Result<Vec<Event>, DbError> {
    let all = store
        .list_events(&EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await?;
    Ok(all.into_iter().filter(|e| e.kind == kind).collect())
}

fn is_lease_lost(result: Result<impl std::fmt::Debug, DbError>, id: i64, who: &str) -> bool {
    matches!(result, Err(DbError::DeployLeaseLost { deploy_id, ref owner }) if deploy_id == id && owner == who)
}

both! {
    async fn releases_are_numbered_per_service_and_reused_for_the_same_build(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let v2 = release(store, "web", "shop", "bbb").await?;
        let again = release(store, "web", "shop", "aaa").await?;
        assert_eq!((v1.number, v2.number), (1, 2));
        assert_eq!(again, v1, "the same sha and artifact reuse the release");
        assert_eq!(v1.name(), "v1");
        assert_eq!(v1.env.get("PORT").map(String::as_str), Some("8080"));

        let mut tarball = new_release("web", "shop", "aaa");
        tarball.artifact = ReleaseArtifact::Tarball { digest: "sha256:0123".to_owned() };
        let v3 = store.create_release(&tarball).await?;
        assert_eq!(v3.number, 3, "another artifact at the same commit is a new release");
        assert_eq!(v3.artifact, tarball.artifact);

        let other = release(store, "web", "cart", "aaa").await?;
        assert_eq!(other.number, 1, "numbers are per service");

        let listed: Vec<i64> = store.releases("shop", 10).await?.iter().map(|r| r.number).collect();
        assert_eq!(listed, [3, 2, 1]);
        let newest: Vec<i64> = store.releases("shop", 2).await?.iter().map(|r| r.number).collect();
        assert_eq!(newest, [3, 2]);
        assert_eq!(store.release("shop", 2).await?, v2);
        assert_eq!(store.release_by_id(v3.id).await?, v3);
        assert!(matches!(store.release("shop", 9).await, Err(DbError::NotFound { what: "release", .. })));
        assert!(matches!(store.release_by_id(v3.id + 100).await, Err(DbError::NotFound { .. })));
        assert!(matches!(store.releases("nope", 10).await, Err(DbError::NotFound { what: "service", .. })));

        let created = events_of(store, EventKind::ReleaseCreated).await?;
        let names: Vec<(String, String)> = created.iter()
            .map(|e| (e.data["service"].as_str().unwrap_or("").to_owned(), e.data["release"].as_str().unwrap_or("").to_owned()))
            .collect();
        let expected = [("shop", "v1"), ("shop", "v2"), ("shop", "v3"), ("cart", "v1")]
            .map(|(s, r)| (s.to_owned(), r.to_owned()));
        assert_eq!(names, expected, "one release.created per new release, none for a reuse");
        assert!(created.iter().all(|e| e.project.as_deref() == Some("web")));
        Ok(())
    }
}

both! {
    async fn servers_releasing_at_once_share_one_numbering(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            // Half release one build (all must get the same release), half a build each.
            let sha = if i % 2 == 0 { "same".to_owned() } else { format!("sha-{i}") };
            tasks.push(tokio::spawn(async move { release(&store, "web", "shop", &sha).await }));
        }
        let mut made = Vec::new();
        for task in tasks {
            made.push(task.await??);
        }
        let same: BTreeSet<i64> = made.iter().filter(|r| r.sha == "same").map(|r| r.id).collect();
        assert_eq!(same.len(), 1, "one release for one build");
        let numbers: BTreeSet<i64> = made.iter().map(|r| r.number).collect();
        assert_eq!(numbers, (1..=9).collect::<BTreeSet<i64>>(), "9 builds numbered 1 to 9 without gaps");
        assert_eq!(events_of(store, EventKind::ReleaseCreated).await?.len(), 9);
        Ok(())
    }
}

both! {
    async fn a_service_belongs_to_the_project_that_declared_it_first(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        project(store, "api").await?;
        let shop = store.register_service("web", "shop").await?;
        assert_eq!((shop.name.as_str(), shop.project.as_str()), ("shop", "web"));
        assert_eq!(store.register_service("web", "shop").await?, shop, "registering again changes nothing");
        assert!(matches!(
            store.register_service("api", "shop").await,
            Err(DbError::Conflict { what: "service", ref key }) if key == "shop"
        ));
        assert!(matches!(
            store.create_release(&new_release("api", "shop", "aaa")).await,
            Err(DbError::Conflict { what: "service", .. })
        ));
        assert!(store.releases("shop", 10).await?.is_empty(), "the refused release was not made");
        assert!(matches!(
            store.register_service("ghost", "blog").await,
            Err(DbError::NotFound { what: "project", .. })
        ));
        store.register_service("api", "gateway").await?;
        let names: Vec<(String, String)> = store.services().await?.into_iter().map(|s| (s.name, s.project)).collect();
        assert_eq!(names, [("gateway".to_owned(), "api".to_owned()), ("shop".to_owned(), "web".to_owned())]);
        assert_eq!(store.service("shop").await?, shop);
        assert!(matches!(store.service("blog").await, Err(DbError::NotFound { what: "service", .. })));
        Ok(())
    }
}

both! {
    async fn deploys_of_one_environment_run_one_at_a_time_oldest_first(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let v2 = release(store, "web", "shop", "bbb").await?;
        let first = deploy(store, "shop", "staging", v1.id).await?;
        let second = deploy(store, "shop", "staging", v2.id).await?;
        let prod = deploy(store, "shop", "production", v1.id).await?;
        assert_eq!((first.state, first.phase), (DeployState::Queued, DeployPhase::Pending));
        assert_eq!(first.release_name(), "v1");

        let claimed = store.claim_deploy("server-a", LEASE).await?.ok_or("the oldest deploy")?;
        assert_eq!(claimed.id, first.id);
        assert_eq!(claimed.state, DeployState::Running);
        assert_eq!(claimed.owner.as_deref(), Some("server-a"));
        assert_eq!(claimed.previous_release_id, None, "nothing was live in staging");
        let expires = claimed.lease_expires_at.ok_or("a lease")?;
        assert!(expires > now_ms() + 20_000, "the lease runs about 30 s: {expires}");
        assert!(claimed.started_at.is_some());

        let other_env = store.claim_deploy("server-b", LEASE).await?.ok_or("production is free")?;
        assert_eq!(other_env.id, prod.id, "another environment does not wait");
        assert!(store.claim_deploy("server-b", LEASE).await?.is_none(), "staging is busy");
        assert_eq!(store.deploy(second.id).await?.state, DeployState::Queued);

        store.switch_live(first.id, "server-a", &Switch { instances: json!([{ "port": 9001 }]), keep_previous: None }).await?;
        store.finish_deploy(first.id, "server-a", DeployState::Succeeded, None).await?;
        let next = store.claim_deploy("server-b", LEASE).await?.ok_or("staging is free again")?;
        assert_eq!(next.id, second.id);
        assert_eq!(next.previous_release_id, Some(v1.id), "the release live when it started");

        let active: Vec<i64> = store.deploys(&DeployQuery { active_only: true, ..DeployQuery::default() }).await?
            .iter().map(|d| d.id).collect();
        assert_eq!(active, [prod.id, second.id], "newest first");
        let staging: Vec<i64> = store.deploys(&DeployQuery {
            service: Some("shop".to_owned()),
            environment: Some("staging".to_owned()),
            limit: Some(1),
            ..DeployQuery::default()
        }).await?.iter().map(|d| d.id).collect();
        assert_eq!(staging, [second.id]);
        assert!(store.deploys(&DeployQuery { service: Some("cart".to_owned()), ..DeployQuery::default() }).await?.is_empty());
        Ok(())
    }
}

both! {
    async fn concurrent_claimers_never_run_two_deploys_of_one_environment(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut queued: BTreeMap<(String, String), VecDeque<i64>> = BTreeMap::new();
        for service in ["shop", "cart", "blog", "mail"] {
            let r = release(store, "web", service, "aaa").await?;
            for _ in 0..3 {
                for env in ["staging", "production"] {
                    let d = deploy(store, service, env, r.id).await?;
                    queued.entry((service.to_owned(), env.to_owned())).or_default().push_back(d.id);
                }
            }
        }
        for round in 0..3 {
            let mut tasks = Vec::new();
            for claimer in 0..8 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Some(d) = store.claim_deploy(&format!("server-{claimer}"), LEASE).await? {
                        mine.push(d);
                    }
                    Ok::<_, DbError>(mine)
                }));
            }
            let mut claimed = Vec::new();
            for task in tasks {
                claimed.extend(task.await??);
            }
            let envs: BTreeSet<(String, String)> = claimed.iter().map(|d| (d.service.clone(), d.environment.clone())).collect();
            assert_eq!(claimed.len(), 8, "round {round}: one deploy per environment: {claimed:?}");
            assert_eq!(envs.len(), 8, "round {round}: never two of one environment");
            for d in &claimed {
                let expected = queued.get_mut(&(d.service.clone(), d.environment.clone())).and_then(VecDeque::pop_front);
                assert_eq!(Some(d.id), expected, "round {round}: the oldest of {} {} first", d.service, d.environment);
                let owner = d.owner.clone().ok_or("an owner")?;
                store.finish_deploy(d.id, &owner, DeployState::Succeeded, None).await?;
            }
        }
        assert!(store.claim_deploy("late", LEASE).await?.is_none());
        assert_eq!(events_of(store, EventKind::DeployStarted).await?.len(), 24);
        Ok(())
    }
}

both! {
    async fn a_deploy_needing_approval_waits_until_approved(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let waiting = store.create_deploy(&NewDeploy { needs_approval: true, ..new_deploy("shop", "production", v1.id) }).await?;
        assert_eq!(waiting.state, DeployState::WaitingApproval);
        assert!(store.claim_deploy("server-a", LEASE).await?.is_none(), "not before approval");

        let approved = store.approve_deploy(waiting.id, "bob").await?;
        assert_eq!(approved.state, DeployState::Queued);
        assert_eq!(approved.approved_by.as_deref(), Some("bob"));
        assert!(matches!(store.approve_deploy(waiting.id, "bob").await, Err(DbError::Invalid(_))), "approved once");

        let claimed = store.claim_deploy("server-a", LEASE).await?.ok_or("approved deploy")?;
        assert_eq!(claimed.id, waiting.id);
        assert!(matches!(store.approve_deploy(waiting.id, "bob").await, Err(DbError::Invalid(_))));
        assert!(matches!(store.approve_deploy(waiting.id + 100, "bob").await, Err(DbError::NotFound { what: "deploy", .. })));

        let approvals = events_of(store, EventKind::DeployApproved).await?;
        assert_eq!(approvals.len(), 1);
        assert_eq!(approvals[0].data["approved_by"], "bob");
        assert_eq!(approvals[0].data["deploy_id"], waiting.id);
        assert_eq!(approvals[0].data["environment"], "production");
        let queued = events_of(store, EventKind::DeployQueued).await?;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].data["state"], "waiting_approval");
        assert_eq!(queued[0].data["release"], "v1");
        Ok(())
    }
}

both! {
    async fn cancel_works_only_before_a_deploy_runs(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let running = deploy(store, "shop", "staging", v1.id).await?;
        let queued = deploy(store, "shop", "staging", v1.id).await?;
        let waiting = store.create_deploy(&NewDeploy { needs_approval: true, ..new_deploy("shop", "production", v1.id) }).await?;
        assert_eq!(store.claim_deploy("server-a", LEASE).await?.map(|d| d.id), Some(running.id));

        let cancelled = store.cancel_deploy(queued.id, "carol").await?;
        assert_eq!((cancelled.state, cancelled.phase), (DeployState::Cancelled, DeployPhase::Done));
        assert!(cancelled.finished_at.is_some());
        assert!(cancelled.reason.as_deref().is_some_and(|r| r.contains("carol")), "{:?}", cancelled.reason);
        assert_eq!(store.cancel_deploy(waiting.id, "carol").await?.state, DeployState::Cancelled);

        let err = store.cancel_deploy(running.id, "carol").await.expect_err("a running deploy is not cancelled here");
        assert!(matches!(err, DbError::Invalid(ref m) if m.contains("running")), "{err}");
        assert!(matches!(store.cancel_deploy(queued.id, "carol").await, Err(DbError::Invalid(_))), "already ended");
        assert!(matches!(store.cancel_deploy(running.id + 100, "carol").await, Err(DbError::NotFound { .. })));
        assert_eq!(store.deploy(running.id).await?.state, DeployState::Running);

        store.finish_deploy(running.id, "server-a", DeployState::Succeeded, None).await?;
        assert!(store.claim_deploy("server-a", LEASE).await?.is_none(), "cancelled deploys are never claimed");
        let finished = events_of(store, EventKind::DeployFinished).await?;
        let states: Vec<(i64, String)> = finished.iter()
            .map(|e| (e.data["deploy_id"].as_i64().unwrap_or(0), e.data["state"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(states, [
            (queued.id, "cancelled".to_owned()),
            (waiting.id, "cancelled".to_owned()),
            (running.id, "succeeded".to_owned()),
        ]);
        Ok(())
    }
}

both! {
    async fn only_the_lease_holder_can_move_a_deploy(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let d = deploy(store, "shop", "staging", v1.id).await?;
        store.claim_deploy("server-a", LEASE).await?.ok_or("claim")?;
        let id = d.id;
        let switch = Switch { instances: json!([]), keep_previous: None };
        assert!(is_lease_lost(store.renew_deploy(id, "server-b", LEASE).await, id, "server-b"));
        assert!(is_lease_lost(store.deploy_step(id, "server-b", DeployPhase::Start, "Starting.").await, id, "server-b"));
        assert!(is_lease_lost(store.save_deploy_progress(id, "server-b", &json!({ "x": 1 })).await, id, "server-b"));
        assert!(is_lease_lost(store.switch_live(id, "server-b", &switch).await, id, "server-b"));
        assert!(is_lease_lost(store.finish_deploy(id, "server-b", DeployState::Failed, None).await, id, "server-b"));
        assert!(store.live_env("shop", "staging").await?.is_none(), "the refused switch changed nothing");
        assert!(events_of(store, EventKind::DeploySwitched).await?.is_empty(), "and appended nothing");
        assert!(store.deploy_steps(id).await?.is_empty());

        store.renew_deploy(id, "server-a", LEASE).await?;
        store.deploy_step(id, "server-a", DeployPhase::Prepare, "Unpacked the release.").await?;
        store.deploy_step(id, "server-a", DeployPhase::Start, "Started 2 instances.").await?;
        let progress = json!({ "started": ["shop-v1-0", "shop-v1-1"] });
        store.save_deploy_progress(id, "server-a", &progress).await?;
        let now = store.deploy(id).await?;
        assert_eq!(now.phase, DeployPhase::Start);
        assert_eq!(now.progress, progress);
        let steps: Vec<(i64, DeployPhase, String)> = store.deploy_steps(id).await?.into_iter().map(|s| (s.seq, s.phase, s.message)).collect();
        assert_eq!(steps, [
            (1, DeployPhase::Prepare, "Unpacked the release.".to_owned()),
            (2, DeployPhase::Start, "Started 2 instances.".to_owned()),
        ]);
        let progress_events = events_of(store, EventKind::DeployProgress).await?;
        assert_eq!(progress_events.len(), 2);
        assert_eq!(progress_events[1].data["message"], "Started 2 instances.");
        assert_eq!(progress_events[1].data["phase"], "start");

        assert!(matches!(store.finish_deploy(id, "server-a", DeployState::Running, None).await, Err(DbError::Invalid(_))));
        let failed = store.finish_deploy(id, "server-a", DeployState::RolledBack, Some("health check failed")).await?;
        assert_eq!((failed.state, failed.phase), (DeployState::RolledBack, DeployPhase::Done));
        assert_eq!(failed.reason.as_deref(), Some("health check failed"));
        assert_eq!((failed.owner, failed.lease_expires_at), (None, None));
        assert!(is_lease_lost(store.renew_deploy(id, "server-a", LEASE).await, id, "server-a"), "it ended");
        let finished = events_of(store, EventKind::DeployFinished).await?;
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].data["state"], "rolled_back");
        assert_eq!(finished[0].data["reason"], "health check failed");
        let err = store.renew_deploy(id, "server-a", LEASE).await.expect_err("lost");
        assert_eq!(err.to_string(), format!("deploy {id} is no longer held by `server-a`: it ended or another server took it over"));
        assert!(matches!(store.deploy_steps(id + 100).await, Err(DbError::NotFound { .. })));
        Ok(())
    }
}

both! {
    async fn a_deploy_whose_lease_expired_is_taken_over(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let held = deploy(store, "shop", "staging", v1.id).await?;
        let lapsed = deploy(store, "shop", "production", v1.id).await?;
        store.claim_deploy("server-a", LEASE).await?.ok_or("claim staging")?;
        store.claim_deploy("server-a", Duration::ZERO).await?.ok_or("claim production")?;
        tokio::time::sleep(Duration::from_millis(20)).await;

        let expired: Vec<i64> = store.expired_deploys(now_ms()).await?.iter().map(|d| d.id).collect();
        assert_eq!(expired, [lapsed.id], "only the lease that ended");
        assert!(store.take_over_deploy(held.id, "server-b", LEASE).await?.is_none(), "a live lease is not taken");
        let again = store.take_over_deploy(held.id, "server-a", LEASE).await?.ok_or("its holder takes it up again")?;
        assert_eq!(again.owner.as_deref(), Some("server-a"));

        let taken = store.take_over_deploy(lapsed.id, "server-b", LEASE).await?.ok_or("an ended lease is taken")?;
        assert_eq!(taken.owner.as_deref(), Some("server-b"));
        assert!(taken.lease_expires_at.is_some_and(|t| t > now_ms()));
        assert!(store.take_over_deploy(lapsed.id, "server-c", LEASE).await?.is_none(), "server-b holds it now");
        assert!(store.expired_deploys(now_ms()).await?.is_empty());
        assert!(is_lease_lost(store.renew_deploy(lapsed.id, "server-a", LEASE).await, lapsed.id, "server-a"));
        store.deploy_step(lapsed.id, "server-b", DeployPhase::Rollback, "Stopping what the old server started.").await?;

        let owned_by_a: Vec<i64> = store.deploys_owned_by("server-a").await?.iter().map(|d| d.id).collect();
        let owned_by_b: Vec<i64> = store.deploys_owned_by("server-b").await?.iter().map(|d| d.id).collect();
        assert_eq!((owned_by_a, owned_by_b), (vec![held.id], vec![lapsed.id]));
        let steps = store.deploy_steps(lapsed.id).await?;
        assert_eq!(steps.len(), 2);
        assert!(steps[0].message.contains("server-b") && steps[0].message.contains("server-a"), "{}", steps[0].message);

        store.finish_deploy(lapsed.id, "server-b", DeployState::RolledBack, Some("server-a went away")).await?;
        assert!(store.take_over_deploy(lapsed.id, "server-b", LEASE).await?.is_none(), "an ended deploy is not taken");
        assert!(matches!(store.take_over_deploy(lapsed.id + 100, "server-b", LEASE).await, Err(DbError::NotFound { .. })));
        Ok(())
    }
}

both! {
    async fn switch_live_records_the_live_release_and_keeps_the_old_one_warm(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let v2 = release(store, "web", "shop", "bbb").await?;
        let v3 = release(store, "web", "shop", "ccc").await?;
        assert!(store.live_env("shop", "staging").await?.is_none());

        let first = deploy_live(store, "shop", "staging", v1.id, Some((json!(["ignored"]), 1))).await?;
        let live = store.live_env("shop", "staging").await?.ok_or("live after the first switch")?;
        assert_eq!((live.release_id, live.release_number, live.deploy_id), (v1.id, 1, first.id));
        assert_eq!(live.project, "web");
        assert_eq!(live.instances, json!([{ "release_id": v1.id, "port": 9000 + v1.id }]));
        assert_eq!(live.previous, None, "nothing was live before to keep warm");

        let until = now_ms() + 60_000;
        let second = deploy_live(store, "shop", "staging", v2.id, Some((json!(["old-0"]), until))).await?;
        assert_eq!(second.previous_release_id, Some(v1.id));
        let live = store.live_env("shop", "staging").await?.ok_or("live")?;
        assert_eq!((live.release_number, live.deploy_id), (2, second.id));
        let warm = live.previous.clone().ok_or("v1 kept warm")?;
        assert_eq!((warm.release_id, warm.release_number, warm.warm_until), (v1.id, 1, until));
        assert_eq!(warm.instances, json!(["old-0"]));

        store.clear_warm("shop", "staging", v2.id).await?;
        assert_eq!(store.live_env("shop", "staging").await?.ok_or("live")?.previous, Some(warm), "not the warm release: unchanged");
        store.clear_warm("shop", "staging", v1.id).await?;
        assert_eq!(store.live_env("shop", "staging").await?.ok_or("live")?.previous, None);

        store.replace_live_instances("shop", "staging", v1.id, &json!(["stale"])).await?;
        assert_ne!(store.live_env("shop", "staging").await?.ok_or("live")?.instances, json!(["stale"]));
        store.replace_live_instances("shop", "staging", v2.id, &json!(["restarted-0"])).await?;
        let live = store.live_env("shop", "staging").await?.ok_or("live")?;
        assert_eq!((live.release_id, live.instances), (v2.id, json!(["restarted-0"])));

        deploy_live(store, "shop", "production", v1.id, None).await?;
        deploy_live(store, "shop", "staging", v3.id, None).await?;
        let all: Vec<(String, i64, bool)> = store.live_envs().await?.into_iter()
            .map(|l| (l.environment, l.release_number, l.previous.is_some())).collect();
        assert_eq!(all, [("production".to_owned(), 1, false), ("staging".to_owned(), 3, false)]);

        let switched = events_of(store, EventKind::DeploySwitched).await?;
        let summary: Vec<(String, String, serde_json::Value)> = switched.iter()
            .map(|e| (e.data["environment"].as_str().unwrap_or("").to_owned(), e.data["release"].as_str().unwrap_or("").to_owned(), e.data["previous_release"].clone()))
            .collect();
        assert_eq!(summary, [
            ("staging".to_owned(), "v1".to_owned(), json!(null)),
            ("staging".to_owned(), "v2".to_owned(), json!("v1")),
            ("production".to_owned(), "v1".to_owned(), json!(null)),
            ("staging".to_owned(), "v3".to_owned(), json!("v2")),
        ]);
        assert_eq!(switched[1].data["kept_warm"], true);
        assert_eq!(switched[1].data["warm_until"], until);
        Ok(())
    }
}

both! {
    async fn prune_keeps_live_warm_and_in_flight_releases_and_the_newest(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut r = Vec::new();
        for sha in ["s1", "s2", "s3", "s4", "s5", "s6"] {
            r.push(release(store, "web", "shop", sha).await?);
        }
        deploy_live(store, "shop", "production", r[0].id, None).await?;
        deploy_live(store, "shop", "staging", r[1].id, None).await?;
        deploy_live(store, "shop", "staging", r[2].id, Some((json!(["v2-0"]), now_ms() + 60_000))).await?;
        let pending = deploy(store, "shop", "production", r[3].id).await?;

        let pruned: Vec<i64> = store.prune_releases("shop", 1).await?.iter().map(|p| p.number).collect();
        assert_eq!(pruned, [5], "v1 live, v2 warm, v3 live, v4 queued, v6 newest");
        let left: Vec<i64> = store.releases("shop", 100).await?.iter().map(|p| p.number).collect();
        assert_eq!(left, [6, 4, 3, 2, 1]);
        assert!(matches!(store.release("shop", 5).await, Err(DbError::NotFound { .. })));

        let v7 = release(store, "web", "shop", "s7").await?;
        assert_eq!(v7.number, 7, "a pruned number is not given again");
        store.cancel_deploy(pending.id, "alice").await?;
        store.clear_warm("shop", "staging", r[1].id).await?;
        let pruned: Vec<i64> = store.prune_releases("shop", 2).await?.iter().map(|p| p.number).collect();
        assert_eq!(pruned, [2, 4], "no longer warm or in flight");
        let left: Vec<i64> = store.releases("shop", 100).await?.iter().map(|p| p.number).collect();
        assert_eq!(left, [7, 6, 3, 1]);
        assert_eq!(store.deploy(pending.id).await?.release_name(), "v4", "history outlives the release");
        assert!(store.prune_releases("shop", 2).await?.is_empty());
        assert!(matches!(store.prune_releases("nope", 2).await, Err(DbError::NotFound { .. })));
        Ok(())
    }
}

both! {
    async fn a_deploy_appends_an_event_for_every_change(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let mut new = new_deploy("shop", "production", v1.id);
        new.needs_approval = true;
        new.run_id = None;
        new.job = Some("ship".to_owned());
        let d = store.create_deploy(&new).await?;
        store.approve_deploy(d.id, "bob").await?;
        store.claim_deploy("server-a", LEASE).await?.ok_or("claim")?;
        store.deploy_step(d.id, "server-a", DeployPhase::Health, "2 of 2 instances healthy.").await?;
        store.switch_live(d.id, "server-a", &Switch { instances: json!([]), keep_previous: None }).await?;
        store.finish_deploy(d.id, "server-a", DeployState::Succeeded, None).await?;

        let events = store.list_events(&EventQuery { project: Some("web".to_owned()), ..EventQuery::default() }).await?;
        let kinds: Vec<EventKind> = events.iter().filter(|e| e.data["deploy_id"] == d.id).map(|e| e.kind).collect();
        assert_eq!(kinds, [
            EventKind::DeployQueued,
            EventKind::DeployApproved,
            EventKind::DeployStarted,
            EventKind::DeployProgress,
            EventKind::DeploySwitched,
            EventKind::DeployFinished,
        ]);
        for e in events.iter().filter(|e| e.data["deploy_id"] == d.id) {
            assert_eq!(e.data["service"], "shop", "{e:?}");
            assert_eq!(e.data["environment"], "production", "{e:?}");
            assert_eq!(e.data["release"], "v1", "{e:?}");
            assert_eq!(e.job.as_deref(), Some("ship"), "{e:?}");
        }
        let started = events.iter().find(|e| e.kind == EventKind::DeployStarted).ok_or("started")?;
        assert_eq!(started.data["owner"], "server-a");
        let finished = events.iter().find(|e| e.kind == EventKind::DeployFinished).ok_or("finished")?;
        assert_eq!(finished.data["state"], "succeeded");
        Ok(())
    }
}

both! {
    async fn deploys_name_a_known_service_and_one_of_its_releases(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let shop = release(store, "web", "shop", "aaa").await?;
        let cart = release(store, "web", "cart", "aaa").await?;
        assert!(matches!(deploy(store, "blog", "staging", shop.id).await, Err(DbError::NotFound { what: "service", .. })));
        assert!(matches!(deploy(store, "shop", "staging", shop.id + cart.id + 100).await, Err(DbError::NotFound { what: "release", .. })));
        let err = deploy(store, "shop", "staging", cart.id).await.expect_err("cart's release");
        assert!(matches!(err, DbError::Invalid(ref m) if m.contains("`shop`")), "{err}");
        assert!(matches!(deploy(store, "shop", "", shop.id).await, Err(DbError::Invalid(_))));
        assert!(store.deploys(&DeployQuery::default()).await?.is_empty());
        Ok(())
    }
}

both! {
    async fn a_deploy_switching_again_keeps_warm_what_it_first_replaced(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let v1 = release(store, "web", "shop", "aaa").await?;
        let v2 = release(store, "web", "shop", "bbb").await?;
        deploy_live(store, "shop", "staging", v1.id, None).await?;
        let d = deploy(store, "shop", "staging", v2.id).await?;
        store.claim_deploy("server-a", LEASE).await?.ok_or("claim")?;
        let until = now_ms() + 60_000;
        let keep = Some((json!(["v1-0"]), until));
        let once = store.switch_live(d.id, "server-a", &Switch { instances: json!(["v2-0"]), keep_previous: keep.clone() }).await?;
        // Resumed after a crash, or the next canary step: the same deploy switches again.
        let twice = store.switch_live(d.id, "server-a", &Switch { instances: json!(["v2-1"]), keep_previous: keep }).await?;
        let warm = twice.previous.clone().ok_or("v1 still warm")?;
        assert_eq!((warm.release_id, warm.release_number), (v1.id, 1), "not v2 warm behind itself");
        assert_eq!(twice.previous, once.previous);
        assert_eq!((twice.release_number, twice.instances.clone()), (2, json!(["v2-1"])));
        let switched = events_of(store, EventKind::DeploySwitched).await?;
        assert_eq!(switched.last().map(|e| e.data["previous_release"].clone()), Some(json!("v1")));

        store.finish_deploy(d.id, "server-a", DeployState::Succeeded, None).await?;
        let err = store.switch_live(d.id, "server-a", &Switch { instances: json!([]), keep_previous: None }).await.expect_err("ended");
        assert!(matches!(err, DbError::DeployLeaseLost { .. }), "{err}");
        assert_eq!(store.live_env("shop", "staging").await?.ok_or("live")?, twice, "a refused switch changes nothing");
        Ok(())
    }
}
