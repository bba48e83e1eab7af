//! The tree walk: top level, `on` and `jobs`, into the model.
//!
//! Every reader records its problems in the [`Cx`] and returns `None` for the value it
//! could not read; the walk goes on so that one pass reports everything. Checks that
//! need the whole file (needs, cycles, matrix ids) run after the walk, in [`crate::graph`]
//! and [`crate::matrix`].

use crate::cx::{At, Cx, ScalarKind, pos, scalar_kind};
use crate::expr::{Expr, Place, Refs, check, strip_wrapper};
use crate::model::*;
use crate::template::check_template;
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;

/// Keys of the top level.
pub(crate) const TOP_KEYS: &[&str] = &["name", "on", "env", "jobs", "deploy"];
/// Keys of `on`.
pub(crate) const ON_KEYS: &[&str] = &["push", "schedule", "manual"];
/// Keys of `on.push`.
pub(crate) const PUSH_KEYS: &[&str] = &["branches", "tags", "paths"];
/// Keys of an `on.schedule` entry.
pub(crate) const SCHEDULE_KEYS: &[&str] = &["cron"];

/// A template or condition seen in a job, kept to check `matrix.X` / `needs.X` once
/// the job is known.
pub(crate) struct SeenRefs {
    pub pos: (usize, usize),
    pub key: String,
    pub refs: Refs,
}

impl Cx<'_> {
    /// Checks a `${{ … }}` template; returns what it refers to.
    pub fn template(&mut self, text: &At<String>) -> Refs {
        let (refs, problems) = check_template(&text.value);
        for (message, hint) in problems {
            let message = format!("invalid template: {message}");
            match hint {
                Some(h) => self.error_hint(text.pos, &text.key, message, h),
                None => self.error(text.pos, &text.key, message),
            }
        }
        refs
    }

    /// Reads and checks an `if:` condition; returns it with what it refers to.
    pub fn condition(&mut self, node: &Node, key: &str) -> Option<(Expr, Refs)> {
        let text = self.text(node, key)?;
        let (refs, problems) = check(strip_wrapper(&text.value), Place::Condition);
        for (message, hint) in problems {
            let message = format!("invalid condition: {message}");
            match hint {
                Some(h) => self.error_hint(text.pos, key, message, h),
                None => self.error(text.pos, key, message),
            }
        }
        Some((Expr { source: text.value }, refs.unwrap_or_default()))
    }

    /// Reads a glob.
    pub fn glob(&mut self, text: &At<String>) -> Option<Glob> {
        match crate::hash::glob(&text.value) {
            Ok(g) => Some(Glob {
                pattern: text.value.clone(),
                matcher: g.compile_matcher(),
            }),
            Err(e) => {
                self.error_hint(
                    text.pos,
                    &text.key,
                    format!("invalid glob \"{}\": {}", text.value, e.kind()),
                    "globs use `*` (within one path segment), `**` (any depth), `?` and `{a,b}`",
                );
                None
            }
        }
    }

    /// Reads an `env` mapping whose values are templates.
    pub fn env_templates(
        &mut self,
        node: &Node,
        key: &str,
        seen: &mut Vec<SeenRefs>,
    ) -> IndexMap<String, String> {
        let Some(env) = self.env(node, key) else {
            return IndexMap::new();
        };
        env.into_iter()
            .map(|(k, v)| {
                self.template_seen(&v, seen);
                (k, v.value)
            })
            .collect()
    }

    /// Reads an `if:` condition like [`Cx::condition`], keeping what it refers to in
    /// `seen` for the checks made once the job is known.
    pub fn condition_seen(
        &mut self,
        node: &Node,
        key: &str,
        seen: &mut Vec<SeenRefs>,
    ) -> Option<Expr> {
        let (expr, refs) = self.condition(node, key)?;
        seen.push(SeenRefs {
            pos: pos(node),
            key: key.to_string(),
            refs,
        });
        Some(expr)
    }

    /// Checks a template and remembers what it refers to.
    pub fn template_seen(&mut self, text: &At<String>, seen: &mut Vec<SeenRefs>) {
        let refs = self.template(text);
        seen.push(SeenRefs {
            pos: text.pos,
            key: text.key.clone(),
            refs,
        });
    }
}

/// Converts the whole file; `None` only when the top level is unusable.
pub(crate) fn pipeline(cx: &mut Cx, root: &Node, default_name: String) -> Option<Pipeline> {
    let map = cx.mapping(
        root,
        "",
        "a mapping of `name`, `on`, `env`, `jobs` and `deploy`",
        TOP_KEYS,
    )?;
    let name = map
        .get_node("name")
        .and_then(|n| cx.text(n, "name"))
        .map(|t| t.value)
        .unwrap_or(default_name);
    let on = match map.get_node("on") {
        Some(n) => triggers(cx, n),
        None => Triggers {
            push: Some(PushTrigger::default()),
            schedule: Vec::new(),
            manual: true,
        },
    };
    let mut seen = Vec::new();
    let env = map
        .get_node("env")
        .map(|n| cx.env_templates(n, "env", &mut seen))
        .unwrap_or_default();
    let deploy = map.get_node("deploy").and_then(|n| {
        let at = map
            .iter()
            .find(|(k, _)| k.as_str() == "deploy")
            .map(|(k, _)| crate::cx::key_pos(k))
            .unwrap_or_else(|| pos(n));
        let before = cx.diags.len();
        let deploy = crate::deploy::deploy(cx, n, at);
        // Every reader records why it gave up; should one not, the section must still
        // not be dropped silently from a file that then counts as valid.
        if deploy.is_none() && cx.diags.len() == before {
            cx.error(at, "deploy", "the `deploy` section could not be read");
        }
        deploy
    });
    let jobs = match map.get_node("jobs") {
        Some(n) => {
            let (jobs, spans) = crate::job::jobs(cx, n);
            crate::graph::check(cx, &jobs, &spans);
            let wanted: Vec<_> = spans.values().filter_map(|s| s.deploy.clone()).collect();
            // A broken `deploy` section was reported already; naming one of its
            // environments is then not a second problem.
            if deploy.is_some() || map.get_node("deploy").is_none() {
                crate::deploy::check_jobs(cx, deploy.as_ref(), &wanted);
            }
            jobs
        }
        None => {
            cx.error_hint(
                (1, 1),
                "jobs",
                "the pipeline has no `jobs`",
                "add `jobs:` with at least one job and its `steps:`",
            );
            IndexMap::new()
        }
    };
    Some(Pipeline {
        source: cx.file.to_path_buf(),
        name,
        on,
        env,
        jobs,
        deploy,
    })
}

fn triggers(cx: &mut Cx, node: &Node) -> Triggers {
    let mut t = Triggers::default();
    // `on: push` and `on: [push, manual]`.
    let names = match node {
        Node::Scalar(_) => cx.string(node, "on").map(|s| vec![s]),
        Node::Sequence(_) => cx.string_list(node, "on"),
        Node::Mapping(_) => None,
    };
    if let Some(names) = names {
        for n in names {
            match n.value.as_str() {
                "push" => t.push = Some(PushTrigger::default()),
                "manual" => t.manual = true,
                "schedule" => cx.error_hint(
                    n.pos,
                    &n.key,
                    "`schedule` needs its cron expressions",
                    "write `on: { schedule: [{ cron: \"0 3 * * *\" }] }`",
                ),
                other => {
                    let hint = match crate::cx::suggest(other, ON_KEYS.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "expected `push` or `manual`".into(),
                    };
                    cx.error_hint(n.pos, &n.key, format!("unknown trigger `{other}`"), hint)
                }
            }
        }
        return t;
    }
    let Some(map) = cx.mapping(
        node,
        "on",
        "a mapping of `push`, `schedule` and `manual`",
        ON_KEYS,
    ) else {
        return t;
    };
    if let Some(n) = map.get_node("push") {
        t.push = push(cx, n);
    }
    if let Some(n) = map.get_node("schedule") {
        t.schedule = schedule(cx, n);
    }
    if let Some(n) = map.get_node("manual") {
        t.manual = cx.boolean(n, "on.manual").unwrap_or(false);
    }
    t
}

fn push(cx: &mut Cx, node: &Node) -> Option<PushTrigger> {
    if let Node::Scalar(s) = node {
        match scalar_kind(s) {
            ScalarKind::Null | ScalarKind::Bool(true) => return Some(PushTrigger::default()),
            ScalarKind::Bool(false) => return None,
            _ => {}
        }
    }
    let map = cx.mapping(
        node,
        "on.push",
        "a mapping of `branches`, `tags` and `paths`",
        PUSH_KEYS,
    )?;
    let mut globs = |name: &str| -> Vec<Glob> {
        let key = format!("on.push.{name}");
        map.get_node(name)
            .and_then(|n| cx.string_list(n, &key))
            .unwrap_or_default()
            .iter()
            .filter_map(|g| cx.glob(g))
            .collect()
    };
    Some(PushTrigger {
        branches: globs("branches"),
        tags: globs("tags"),
        paths: globs("paths"),
    })
}

fn schedule(cx: &mut Cx, node: &Node) -> Vec<CronSchedule> {
    let Some(items) = node.as_sequence() else {
        cx.wrong_type(node, "on.schedule", "a list of `{ cron: \"…\" }` entries");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("on.schedule[{i}]");
        let text = if item.as_scalar().is_some() {
            cx.string(item, &key)
        } else {
            let Some(map) = cx.mapping(item, &key, "a `{ cron: \"…\" }` entry", SCHEDULE_KEYS)
            else {
                continue;
            };
            match map.get_node("cron") {
                Some(n) => cx.string(n, &join_key(&key, "cron")),
                None => {
                    cx.error(pos(item), &key, "the schedule entry has no `cron`");
                    None
                }
            }
        };
        let Some(text) = text else { continue };
        // Five fields only: schedules to the second (or year) are not what a pipeline
        // needs, and the five-field form is the one people know from crontab.
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        match parser.parse(&text.value) {
            Ok(parsed) => out.push(CronSchedule {
                cron: text.value,
                parsed,
            }),
            Err(e) => cx.error_hint(
                text.pos,
                &text.key,
                format!("invalid cron expression \"{}\": {e}", text.value),
                "five fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * 1-5`",
            ),
        }
    }
    out
}
