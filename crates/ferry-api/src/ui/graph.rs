//! The job graph of a run: jobs in columns by DAG level, lines from each job to the
//! jobs that need it, drawn as inline SVG (no style attributes, so the page's
//! Content-Security-Policy can forbid inline styles).

use super::layout::{self, look};
use ferry_store::db::Job;
use maud::{Markup, html};
use std::collections::HashMap;

const NODE_W: i64 = 200;
const NODE_H: i64 = 48;
const COL_GAP: i64 = 56;
const ROW_GAP: i64 = 14;
const PAD: i64 = 6;
/// Characters of a job name that fit in a node.
const NAME_FIT: usize = 22;

/// Where each job goes: (column, row) by index into the job list.
pub(super) fn layout(jobs: &[Job]) -> Vec<(usize, usize)> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    // Level = 1 + the deepest need. Relax at most `len` times: the store refuses
    // unknown needs, and a cycle (which it would never start) just stops deepening.
    let mut level = vec![0usize; jobs.len()];
    for _ in 0..jobs.len() {
        let mut changed = false;
        for (i, job) in jobs.iter().enumerate() {
            let want = job
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()))
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0);
            if want > level[i] {
                level[i] = want;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let columns = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut row = vec![0usize; jobs.len()];
    for col in 0..columns {
        let mut members: Vec<usize> = (0..jobs.len()).filter(|&i| level[i] == col).collect();
        // Order a column by where its needs sit, so lines cross less; ties keep the
        // pipeline's order.
        let weight = |i: usize| -> f64 {
            let rows: Vec<usize> = jobs[i]
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()))
                .map(|&d| row[d])
                .collect();
            if rows.is_empty() {
                i as f64
            } else {
                rows.iter().sum::<usize>() as f64 / rows.len() as f64
            }
        };
        if col > 0 {
            members.sort_by(|&a, &b| weight(a).total_cmp(&weight(b)).then(a.cmp(&b)));
        }
        for (r, &i) in members.iter().enumerate() {
            row[i] = r;
        }
    }
    level.into_iter().zip(row).collect()
}

fn pos(col: usize, row: usize) -> (i64, i64) {
    let col = i64::try_from(col).unwrap_or(0);
    let row = i64::try_from(row).unwrap_or(0);
    (
        PAD + col * (NODE_W + COL_GAP),
        PAD + row * (NODE_H + ROW_GAP),
    )
}

fn fit(name: &str) -> String {
    if name.chars().count() <= NAME_FIT {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(NAME_FIT - 1).collect();
        s.push('…');
        s
    }
}

/// The text under a job's name: its status and how long it took.
pub(super) fn job_meta(job: &Job) -> String {
    let l = look(job.status.as_str());
    match (job.started_at, job.finished_at) {
        (Some(s), Some(e)) => format!("{} · {}", l.label, layout::human_ms(e - s)),
        _ => l.label.to_owned(),
    }
}

/// The graph as SVG; each job is a link to its log (`#job-N`).
pub(super) fn render(jobs: &[Job]) -> Markup {
    let places = layout(jobs);
    let cols = places.iter().map(|p| p.0 + 1).max().unwrap_or(1);
    let rows = places.iter().map(|p| p.1 + 1).max().unwrap_or(1);
    let (right, bottom) = pos(cols, rows);
    let width = right - COL_GAP + PAD;
    let height = bottom - ROW_GAP + PAD;
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        for need in &job.needs {
            if let Some(&d) = index.get(need.as_str()) {
                let (x1, y1) = pos(places[d].0, places[d].1);
                let (x2, y2) = pos(places[i].0, places[i].1);
                let (x1, y1, x2, y2) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
                let dx = (x2 - x1).max(COL_GAP) / 2;
                edges.push((
                    format!("M{x1} {y1} C{} {y1}, {} {y2}, {x2} {y2}", x1 + dx, x2 - dx),
                    need.as_str(),
                    job.name.as_str(),
                ));
            }
        }
    }
    html! {
        div.graph-wrap {
            svg.graph xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
                viewBox={ "0 0 " (width) " " (height) } role="group" aria-label="Job graph" {
                g.edges aria-hidden="true" {
                    @for (d, from, to) in &edges {
                        path.edge d=(d) data-from=(from) data-to=(to) {}
                    }
                }
                @for (i, job) in jobs.iter().enumerate() {
                    @let (x, y) = pos(places[i].0, places[i].1);
                    @let l = look(job.status.as_str());
                    a class={ "node s-" (l.cls) } href={ "#job-" (i) } data-job=(job.name)
                        data-index=(i) aria-label={ (job.name) ": " (l.label) } {
                        title { (job.name) }
                        rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="8" {}
                        text.icon x=(x + 14) y=(y + 30) text-anchor="middle" { (l.icon) }
                        text.name x=(x + 28) y=(y + 21) { (fit(&job.name)) }
                        text.meta x=(x + 28) y=(y + 37) { (job_meta(job)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_types::JobStatus;

    fn job(name: &str, needs: &[&str]) -> Job {
        Job {
            id: 0,
            run_id: 1,
            name: name.into(),
            status: JobStatus::Queued,
            attempt: 0,
            max_attempts: 1,
            allow_failure: false,
            runs_on: vec![],
            needs: needs.iter().map(|s| s.to_string()).collect(),
            spec: serde_json::Value::Null,
            agent_id: None,
            lease_expires_at: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            reason: None,
        }
    }

    #[test]
    fn jobs_go_in_columns_by_their_deepest_need() {
        let jobs = vec![
            job("build", &[]),
            job("lint", &[]),
            job("test", &["build"]),
            job("deploy", &["test", "lint"]),
        ];
        let places = layout(&jobs);
        assert_eq!(places[0].0, 0);
        assert_eq!(places[1].0, 0);
        assert_eq!(places[2].0, 1);
        assert_eq!(places[3].0, 2);
        assert_ne!(
            places[0].1, places[1].1,
            "two jobs in one column get two rows"
        );
    }

    #[test]
    fn draws_one_line_per_need_and_one_link_per_job() {
        let jobs = vec![job("a", &[]), job("b", &["a"]), job("c", &["a", "b"])];
        let svg = render(&jobs).into_string();
        assert_eq!(svg.matches("<path").count(), 3);
        assert_eq!(svg.matches("href=\"#job-").count(), 3);
    }
}
