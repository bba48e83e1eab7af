//! The `needs` graph: every needed job exists, and the jobs form no cycle.

use crate::cx::{Cx, suggest};
use crate::job::JobSpans;
use crate::model::Job;
use indexmap::IndexMap;
use std::collections::BTreeSet;

/// Reports unknown `needs` and every cycle.
pub(crate) fn check(cx: &mut Cx, jobs: &IndexMap<String, Job>, spans: &IndexMap<String, JobSpans>) {
    for (id, span) in spans {
        let mut listed = BTreeSet::new();
        for need in &span.needs {
            if !listed.insert(need.value.as_str()) {
                cx.error_hint(
                    need.pos,
                    &need.key,
                    format!("job \"{id}\" needs \"{}\" twice", need.value),
                    "remove the repeated entry",
                );
            } else if !jobs.contains_key(&need.value) {
                let hint = match suggest(&need.value, jobs.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => format!(
                        "the jobs are {}",
                        crate::cx::quote_list(&jobs.keys().map(String::as_str).collect::<Vec<_>>())
                    ),
                };
                cx.error_hint(
                    need.pos,
                    &need.key,
                    format!("job \"{id}\" needs unknown job \"{}\"", need.value),
                    hint,
                );
            }
        }
    }
    for cycle in cycles(jobs) {
        // Point at the `needs` entry that closes the cycle in its first job.
        let (first, second) = (&cycle[0], &cycle[1]);
        let at = spans
            .get(first)
            .and_then(|s| s.needs.iter().find(|n| &n.value == second))
            .map(|n| (n.pos, n.key.clone()))
            .unwrap_or(((0, 0), format!("jobs.{first}.needs")));
        cx.error_hint(
            at.0,
            &at.1,
            format!("the jobs' `needs` form a cycle: {}", cycle.join(" → ")),
            "remove one of these `needs` so the jobs can run in order",
        );
    }
}

/// Every distinct elementary cycle found by a depth-first search, each starting at
/// its first job in file order and ending where it started (`a → b → a`).
fn cycles(jobs: &IndexMap<String, Job>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let index: IndexMap<&str, usize> = jobs
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let edges: Vec<Vec<usize>> = jobs
        .values()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let mut marks = vec![Mark::New; jobs.len()];
    let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
    for start in 0..jobs.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        while let Some((node, next)) = stack.last().copied() {
            if let Some(&to) = edges[node].get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                match marks[to] {
                    Mark::New => {
                        marks[to] = Mark::Active;
                        stack.push((to, 0));
                    }
                    Mark::Active => {
                        let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        cycle.rotate_left(min);
                        found.insert(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    let names: Vec<&String> = jobs.keys().collect();
    found
        .into_iter()
        .map(|c| {
            let mut path: Vec<String> = c.iter().map(|i| names[*i].clone()).collect();
            path.push(path[0].clone());
            path
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, needs: &[&str]) -> (String, Job) {
        let job = Job {
            id: id.into(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            steps: Vec::new(),
            env: IndexMap::new(),
            condition: None,
            image: None,
            services: IndexMap::new(),
            artifacts: None,
            cache: None,
            timeout: None,
            retry: 0,
            allow_failure: false,
            matrix: None,
            approval: None,
            concurrency: None,
            runs_on: Vec::new(),
            working_directory: None,
            shell: None,
            deploy: None,
        };
        (id.into(), job)
    }

    #[test]
    fn finds_each_cycle_once_starting_at_its_first_job() {
        let jobs: IndexMap<String, Job> = [
            job("a", &["b"]),
            job("b", &["c"]),
            job("c", &["a"]),
            job("d", &["e"]),
            job("e", &["d", "a"]),
            job("f", &["a"]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            cycles(&jobs),
            [vec!["a", "b", "c", "a"], vec!["d", "e", "d"]]
        );
    }

    #[test]
    fn a_diamond_is_not_a_cycle() {
        let jobs: IndexMap<String, Job> = [
            job("a", &[]),
            job("b", &["a"]),
            job("c", &["a"]),
            job("d", &["b", "c"]),
        ]
        .into_iter()
        .collect();
        assert!(cycles(&jobs).is_empty());
    }
}
