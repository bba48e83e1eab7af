//! `ferry events [--project P] [--since T] [--follow]`: the event log.

use super::{Ctx, block_on};
use crate::cli::{EventsArgs, Global};
use crate::exit::{Failure, bad_input};
use crate::table::{Table, now_ms, timestamp};
use ferry_client::EventFilter;
use ferry_client::api::Event;
use futures_util::StreamExt;
use std::time::UNIX_EPOCH;

/// Runs `ferry events`.
pub fn events(global: &Global, args: EventsArgs) -> Result<(), Failure> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    let filter = EventFilter {
        project: args.project.clone(),
        since,
        limit: Some(i64::from(args.limit)),
        ..EventFilter::default()
    };
    block_on(async {
        if args.follow {
            let mut stream = ctx.call(ctx.client.follow_events(&filter)).await?;
            while let Some(event) = stream.next().await {
                let event = event.map_err(super::failure)?;
                if ctx.json {
                    println!("{}", serde_json::to_string(&event).unwrap_or_default());
                } else {
                    println!("{}", line(&event));
                }
            }
            eprintln!("The server closed the stream (shutting down?).");
            return Ok(());
        }
        let events = ctx.call(ctx.client.events(&filter)).await?;
        if ctx.json {
            return super::print_json(&events);
        }
        let mut t = Table::new(&["ID", "TIME", "KIND", "PROJECT", "RUN", "JOB", "DETAILS"]);
        for e in &events {
            t.row(vec![
                e.id.to_string(),
                timestamp(e.at),
                e.kind.to_string(),
                e.project.clone().unwrap_or_else(|| "-".into()),
                e.run_id.map_or_else(|| "-".into(), |r| r.to_string()),
                e.job.clone().unwrap_or_else(|| "-".into()),
                details(&e.data),
            ]);
        }
        t.print();
        Ok(())
    })
}

/// One followed event as a line.
fn line(e: &Event) -> String {
    let mut text = format!("{} {}", timestamp(e.at), e.kind);
    if let Some(p) = &e.project {
        text.push_str(&format!(" project={p}"));
    }
    if let Some(r) = e.run_id {
        text.push_str(&format!(" run={r}"));
    }
    if let Some(j) = &e.job {
        text.push_str(&format!(" job={j:?}"));
    }
    let d = details(&e.data);
    if !d.is_empty() {
        text.push(' ');
        text.push_str(&d);
    }
    text
}

/// An event's data as `key=value` pairs.
fn details(data: &serde_json::Value) -> String {
    match data {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `30m`, `2h` (ago) or an RFC 3339 time → unix ms.
fn parse_since(text: &str) -> Result<i64, Failure> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now_ms()
            - i64::try_from(d.as_millis())
                .unwrap_or(i64::MAX)
                .min(now_ms()));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        return Ok(ms);
    }
    Err(bad_input(format!(
        "--since `{text}` is neither a duration ago (30m, 2h, 1day) nor a time (2026-05-01T12:00:00Z)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let an_hour_ago = parse_since("1h").unwrap();
        assert!((now_ms() - an_hour_ago - 3_600_000).abs() < 5_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(parse_since("yesterday-ish").is_err());
    }
}
