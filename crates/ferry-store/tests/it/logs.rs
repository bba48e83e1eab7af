use crate::both;
use crate::fixtures::{job, project, run};
use std::time::Instant;

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("line {i}: compiling crate-{i} v0.{i}.0 ✓"))
        .collect()
}

both! {
    async fn logs_round_trip_and_page(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let r = run(store, "web", vec![job("build", &[], &[]), job("test", &[], &[])]).await?;
        // A live job sends a few lines at a time, from several steps.
        let mut expected = Vec::new();
        for batch in 0..50 {
            let step = if batch < 25 { 0 } else { 1 };
            let new = lines(batch * 10..batch * 10 + 10);
            expected.extend(new.iter().cloned().map(|l| (step, l)));
            let total = store.append_log(r.id, "build", step, new).await?;
            assert_eq!(total, (batch as i64 + 1) * 10);
        }
        store.append_log(r.id, "build", 1, vec!["".into(), "tab\tand \"quotes\"".into()]).await?;
        expected.push((1, String::new()));
        expected.push((1, "tab\tand \"quotes\"".into()));
        assert_eq!(store.append_log(r.id, "build", 1, Vec::new()).await?, 502);

        let all = store.read_log(r.id, "build", 0, 10_000).await?;
        assert_eq!(all.len(), expected.len());
        for (i, (line, (step, text))) in all.iter().zip(&expected).enumerate() {
            assert_eq!((line.number, line.step, &line.text), (i as i64, *step, text));
        }
        let page = store.read_log(r.id, "build", 245, 10).await?;
        assert_eq!(page.iter().map(|l| l.number).collect::<Vec<_>>(), (245..255).collect::<Vec<_>>());
        assert_eq!((page[4].step, page[5].step), (0, 1));
        assert_eq!(page[0].text, expected[245].1);
        assert!(store.read_log(r.id, "build", 502, 10).await?.is_empty());
        assert!(store.read_log(r.id, "build", 0, 0).await?.is_empty());
        assert!(store.read_log(r.id, "test", 0, 10).await?.is_empty(), "logs are per job");
        assert_eq!(store.log_length(r.id, "build").await?, 502);
        assert_eq!(store.log_length(r.id, "test").await?, 0);
        Ok(())
    }
}

both! {
    async fn million_line_log_first_page_reads_without_the_rest(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let r = run(store, "web", vec![job("build", &[], &[])]).await?;
        const N: usize = 1_000_000;
        let started = Instant::now();
        assert_eq!(store.append_log(r.id, "build", 0, lines(0..N)).await?, N as i64);
        let appended = started.elapsed();
        let started = Instant::now();
        let first = store.read_log(r.id, "build", 0, 100).await?;
        let first_page = started.elapsed();
        assert_eq!(first.len(), 100);
        assert_eq!(first[0].text, "line 0: compiling crate-0 v0.0.0 ✓");
        assert_eq!(first[99].number, 99);
        let last = store.read_log(r.id, "build", N as i64 - 50, 100).await?;
        assert_eq!(last.len(), 50);
        assert_eq!(last[49].text, format!("line {}: compiling crate-{0} v0.{0}.0 ✓", N - 1));
        // Timing is reported, not asserted: benchmarks belong to `cargo xtask bench`.
        eprintln!("1M lines: append {appended:?}, first page {first_page:?}");
        Ok(())
    }
}

both! {
    async fn log_follower_sees_new_lines_and_stops_when_the_job_ends(db: TestDb) -> TestResult {
        use ferry_store::db::{JobOutcome, Store};
        use ferry_types::JobResult;
        use std::time::Duration;
        let store = db.store.clone();
        project(&store, "web").await?;
        let r = run(&store, "web", vec![job("build", &[], &[])]).await?;
        let claimed = store.claim_job("a", &[], Duration::from_secs(30)).await?.ok_or("build")?;
        store.append_log(r.id, "build", 0, lines(0..3)).await?;
        let mut follower = store.follow_log(r.id, "build", 1);
        let page = tokio::time::timeout(Duration::from_secs(5), follower.next(100)).await??.ok_or("lines")?;
        assert_eq!(page.iter().map(|l| l.number).collect::<Vec<_>>(), [1, 2]);

        let writer: Store = store.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.append_log(r.id, "build", 1, lines(3..5)).await?;
            writer.finish_job(&claimed.lease, &JobOutcome { result: JobResult::Success, reason: None }).await
        });
        let page = tokio::time::timeout(Duration::from_secs(5), follower.next(100)).await??.ok_or("new lines")?;
        assert_eq!(page.first().map(|l| (l.number, l.step)), Some((3, 1)));
        task.await??;
        let mut rest = Vec::new();
        while let Some(page) = tokio::time::timeout(Duration::from_secs(5), follower.next(100)).await?? {
            rest.extend(page);
        }
        assert_eq!(follower.position(), 5, "every line handed out before the end: {rest:?}");
        Ok(())
    }
}
