//! The expression language of `if:` conditions and `${{ … }}` templates (CEL).
//!
//! Expressions are [CEL](https://cel.dev) evaluated by the `cel` crate over the names
//! of an [`EvalContext`]: `branch`, `tag`, `event`, `env`, `matrix`, `needs`, `ferry`
//! and, in templates only, `secrets`; plus two functions of our own, `changed(glob)`
//! and (in templates) `hashFiles(glob, …)`. Parsing checks the names used, so a typo
//! such as `brnch` is a validation error, not a surprise in the middle of a run.

use crate::cx::suggest;
use crate::model::MatrixValue;
use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue};
use cel::objects::Key;
use cel::{Context, ExecutionError, Program, Value};
use ferry_types::JobResult;
use indexmap::IndexMap;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::template::{interpolate, referenced_secrets};

/// A compiled `if:` expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The expression as written (a `${{ … }}` wrapping is allowed and ignored).
    pub source: String,
}

/// Facts about the run, visible as `ferry.*`.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// `ferry.sha`: full commit id.
    pub sha: String,
    /// `ferry.short_sha`: first 8 characters.
    pub short_sha: String,
    /// `ferry.branch` ("" when none).
    pub branch: Option<String>,
    /// `ferry.tag` ("" when none).
    pub tag: Option<String>,
    /// `ferry.run_id`.
    pub run_id: String,
    /// `ferry.event`: `push`, `schedule`, `manual`, `api`, `local`.
    pub event: String,
    /// `ferry.pipeline`: the pipeline's name.
    pub pipeline: String,
    /// `ferry.job`: the job instance id.
    pub job: String,
    /// `ferry.workspace`: the job's workspace directory.
    pub workspace: String,
}

/// Everything an expression can see.
#[derive(Debug, Clone, Default)]
pub struct EvalContext {
    /// `ferry.*`; `branch`, `tag` and `event` are also top-level names.
    pub facts: RunFacts,
    /// Paths changed by the push, for `changed('src/**')`.
    pub changed_paths: Vec<String>,
    /// `env.*`.
    pub env: IndexMap<String, String>,
    /// `matrix.*`.
    pub matrix: IndexMap<String, crate::model::MatrixValue>,
    /// `needs.<job>.result`.
    pub needs: IndexMap<String, JobResult>,
    /// `secrets.*`, only in templates; only those the job references are filled.
    pub secrets: IndexMap<String, String>,
    /// Root for `hashFiles(glob…)`; `None` makes `hashFiles` an error.
    pub workspace: Option<PathBuf>,
}

/// An expression that failed to evaluate.
#[derive(Debug, thiserror::Error)]
#[error("`{expression}`: {message}")]
pub struct ExprError {
    /// The expression as written.
    pub expression: String,
    /// What went wrong.
    pub message: String,
}

/// Where an expression is used, which decides the names it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// An `if:` condition.
    Condition,
    /// A `${{ … }}` template.
    Template,
}

/// The names every expression may use.
pub(crate) const CONDITION_ROOTS: &[&str] =
    &["branch", "tag", "event", "env", "matrix", "needs", "ferry"];
/// The names of `ferry.*`.
pub(crate) const FERRY_FIELDS: &[&str] = &[
    "sha",
    "short_sha",
    "branch",
    "tag",
    "run_id",
    "event",
    "pipeline",
    "job",
    "workspace",
];

/// What an expression refers to, found by walking its syntax tree.
#[derive(Debug, Default)]
pub(crate) struct Refs {
    /// Top-level names, e.g. `branch`, `env`.
    pub roots: BTreeSet<String>,
    /// `secrets.NAME` / `secrets['NAME']`.
    pub secrets: BTreeSet<String>,
    /// `needs.JOB`.
    pub needs: BTreeSet<String>,
    /// `matrix.AXIS`.
    pub matrix: BTreeSet<String>,
    /// `ferry.FIELD`.
    pub ferry: BTreeSet<String>,
    /// Function names called.
    pub functions: BTreeSet<String>,
    /// Literal glob arguments of `changed` and `hashFiles`.
    pub globs: BTreeSet<String>,
}

/// Strips a GitHub-style `${{ … }}` around a whole condition.
pub(crate) fn strip_wrapper(source: &str) -> &str {
    let t = source.trim();
    match t.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("${{") => inner.trim(),
        _ => t,
    }
}

/// Parses CEL; the message is the parser's, on one line.
pub(crate) fn compile(source: &str) -> Result<Program, String> {
    if source.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    Program::compile(source).map_err(|errors| {
        let msgs: Vec<String> = errors
            .errors
            .iter()
            .map(|e| format!("{} (at column {})", short_parse_message(&e.msg), e.pos.1))
            .collect();
        if msgs.is_empty() {
            "invalid expression".to_string()
        } else {
            msgs.join("; ")
        }
    })
}

/// The parser's message without its list of every token it would have accepted.
fn short_parse_message(msg: &str) -> String {
    let msg = msg.strip_prefix("Syntax error: ").unwrap_or(msg);
    let msg = match msg.find(" expecting ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg == "mismatched input '<EOF>'" {
        "the expression ends too early".to_string()
    } else {
        msg.to_string()
    }
}

/// Walks a parsed expression and collects what it refers to.
pub(crate) fn references(program: &Program) -> Refs {
    let mut refs = Refs::default();
    walk(program.expression(), &mut Vec::new(), &mut refs);
    refs
}

fn walk(e: &IdedExpr, bound: &mut Vec<String>, refs: &mut Refs) {
    let free_ident = |e: &IdedExpr, bound: &Vec<String>| match &e.expr {
        Ast::Ident(name) if !bound.contains(name) => Some(name.clone()),
        _ => None,
    };
    let field_of = |root: &str, field: &str, refs: &mut Refs| {
        let set = match root {
            "secrets" => &mut refs.secrets,
            "needs" => &mut refs.needs,
            "matrix" => &mut refs.matrix,
            "ferry" => &mut refs.ferry,
            _ => return,
        };
        set.insert(field.to_string());
    };
    match &e.expr {
        Ast::Unspecified | Ast::Literal(_) => {}
        Ast::Ident(name) => {
            if !name.starts_with('@') && !bound.contains(name) {
                refs.roots.insert(name.clone());
            }
        }
        Ast::Select(sel) => {
            if let Some(root) = free_ident(&sel.operand, bound) {
                field_of(&root, &sel.field, refs);
            }
            walk(&sel.operand, bound, refs);
        }
        Ast::Call(call) => {
            if call.target.is_none() {
                refs.functions.insert(call.func_name.clone());
            }
            if call.func_name == "_[_]"
                && let [target, index] = call.args.as_slice()
                && let Some(root) = free_ident(target, bound)
                && let Ast::Literal(LiteralValue::String(s)) = &index.expr
            {
                field_of(&root, s.inner(), refs);
            }
            if matches!(call.func_name.as_str(), "changed" | "hashFiles") {
                for arg in &call.args {
                    if let Ast::Literal(LiteralValue::String(s)) = &arg.expr {
                        refs.globs.insert(s.inner().to_string());
                    }
                }
            }
            if let Some(t) = &call.target {
                walk(t, bound, refs);
            }
            for a in &call.args {
                walk(a, bound, refs);
            }
        }
        Ast::Comprehension(c) => {
            walk(&c.iter_range, bound, refs);
            walk(&c.accu_init, bound, refs);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, bound, refs);
            walk(&c.loop_step, bound, refs);
            walk(&c.result, bound, refs);
            bound.truncate(before);
        }
        Ast::List(l) => l.elements.iter().for_each(|x| walk(x, bound, refs)),
        Ast::Map(m) => m.entries.iter().for_each(|x| match &x.expr {
            EntryExpr::StructField(f) => walk(&f.value, bound, refs),
            EntryExpr::MapEntry(me) => {
                walk(&me.key, bound, refs);
                walk(&me.value, bound, refs);
            }
        }),
        Ast::Struct(s) => s.entries.iter().for_each(|x| match &x.expr {
            EntryExpr::StructField(f) => walk(&f.value, bound, refs),
            EntryExpr::MapEntry(me) => {
                walk(&me.key, bound, refs);
                walk(&me.value, bound, refs);
            }
        }),
    }
}

/// A problem found by [`check`]: message and hint.
pub(crate) type Problem = (String, Option<String>);

/// Parses `source` and checks the names it uses for `place`. What it refers to is
/// returned whenever it parses, even with problems, so later checks still run.
pub(crate) fn check(source: &str, place: Place) -> (Option<Refs>, Vec<Problem>) {
    let program = match compile(source) {
        Ok(p) => p,
        Err(m) => return (None, vec![(m, None)]),
    };
    let refs = references(&program);
    let mut problems = Vec::new();
    let mut roots: Vec<&str> = CONDITION_ROOTS.to_vec();
    if place == Place::Template {
        roots.push("secrets");
    }
    for root in &refs.roots {
        if roots.contains(&root.as_str()) {
            continue;
        }
        let hint = if root == "secrets" {
            Some(
                "secrets are only available in `${{ … }}` templates, e.g. in `env` or `run`"
                    .to_string(),
            )
        } else {
            suggest(root, roots.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("the names are {}", crate::cx::quote_list(&roots))))
        };
        problems.push((format!("unknown name `{root}`"), hint));
    }
    for field in &refs.ferry {
        if !FERRY_FIELDS.contains(&field.as_str()) {
            let hint = suggest(field, FERRY_FIELDS.iter().copied())
                .map(|s| format!("did you mean `ferry.{s}`?"));
            problems.push((format!("unknown name `ferry.{field}`"), hint));
        }
    }
    for f in &refs.functions {
        if f == "hashFiles" && place == Place::Condition {
            problems.push((
                "`hashFiles` is only available in `${{ … }}` templates".into(),
                Some("use it in `cache.key`, e.g. `cargo-${{ hashFiles('Cargo.lock') }}`".into()),
            ));
        } else if f != "changed"
            && f != "hashFiles"
            && let Some(s) = suggest(f, ["changed", "hashFiles"])
        {
            problems.push((
                format!("unknown function `{f}`"),
                Some(format!("did you mean `{s}`?")),
            ));
        }
    }
    for g in &refs.globs {
        if let Err(e) = crate::hash::glob(g) {
            problems.push((format!("invalid glob \"{g}\": {}", e.kind()), None));
        }
    }
    (Some(refs), problems)
}

impl Expr {
    /// Parses and checks a condition (as [`crate::parse`] does for `if:`).
    pub fn new(source: &str) -> Result<Expr, ExprError> {
        let (_, problems) = check(strip_wrapper(source), Place::Condition);
        if problems.is_empty() {
            Ok(Expr {
                source: source.to_string(),
            })
        } else {
            Err(ExprError {
                expression: source.to_string(),
                message: problems
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    }

    /// Evaluates the condition; non-boolean results are an error.
    pub fn evaluate(&self, ctx: &EvalContext) -> Result<bool, ExprError> {
        let err = |message: String| ExprError {
            expression: self.source.clone(),
            message,
        };
        let program = compile(strip_wrapper(&self.source)).map_err(err)?;
        let cel_ctx = context(ctx, Place::Condition);
        match program.execute(&cel_ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(err(format!(
                "a condition must be true or false, found {}",
                type_name(&other)
            ))),
            Err(e) => Err(err(execution_message(&e))),
        }
    }
}

/// A readable message for an evaluation error.
pub(crate) fn execution_message(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key `{k}`"),
        ExecutionError::UndeclaredReference(n) => format!("unknown name or function `{n}`"),
        other => other.to_string(),
    }
}

/// The CEL type of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        _ => "a value of another type",
    }
}

fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a String, Value)>) -> Value {
    let map: HashMap<Key, Value> = pairs
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.clone())), v))
        .collect();
    Value::from(map)
}

fn str_value(s: &str) -> Value {
    Value::String(Arc::new(s.to_string()))
}

/// The CEL value of a matrix value.
pub(crate) fn matrix_value(v: &MatrixValue) -> Value {
    match v {
        MatrixValue::String(s) => str_value(s),
        MatrixValue::Int(i) => Value::Int(*i),
        MatrixValue::Float(f) => Value::Float(*f),
        MatrixValue::Bool(b) => Value::Bool(*b),
    }
}

/// Builds the CEL context for `ctx`.
pub(crate) fn context(ctx: &EvalContext, place: Place) -> Context<'static, 'static> {
    let mut c = Context::default();
    let f = &ctx.facts;
    let branch = f.branch.clone().unwrap_or_default();
    let tag = f.tag.clone().unwrap_or_default();
    c.add_variable_from_value("branch", str_value(&branch));
    c.add_variable_from_value("tag", str_value(&tag));
    c.add_variable_from_value("event", str_value(&f.event));
    let ferry = [
        ("sha", f.sha.as_str()),
        ("short_sha", f.short_sha.as_str()),
        ("branch", branch.as_str()),
        ("tag", tag.as_str()),
        ("run_id", f.run_id.as_str()),
        ("event", f.event.as_str()),
        ("pipeline", f.pipeline.as_str()),
        ("job", f.job.as_str()),
        ("workspace", f.workspace.as_str()),
    ];
    let ferry: Vec<(String, &str)> = ferry.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    c.add_variable_from_value(
        "ferry",
        string_map(ferry.iter().map(|(k, v)| (k, str_value(v)))),
    );
    c.add_variable_from_value(
        "env",
        string_map(ctx.env.iter().map(|(k, v)| (k, str_value(v)))),
    );
    c.add_variable_from_value(
        "matrix",
        string_map(ctx.matrix.iter().map(|(k, v)| (k, matrix_value(v)))),
    );
    let result = "result".to_string();
    c.add_variable_from_value(
        "needs",
        string_map(
            ctx.needs
                .iter()
                .map(|(k, r)| (k, string_map([(&result, str_value(r.as_str()))]))),
        ),
    );
    if place == Place::Template {
        c.add_variable_from_value(
            "secrets",
            string_map(ctx.secrets.iter().map(|(k, v)| (k, str_value(v)))),
        );
    }
    let changed = Arc::new(ctx.changed_paths.clone());
    // Neither name is a standard-library overload, so adding cannot fail.
    let _ = c.add_function(
        "changed",
        move |pattern: Arc<String>| -> Result<Value, ExecutionError> {
            let glob = crate::hash::glob(&pattern)
                .map_err(|e| ExecutionError::function_error("changed", e.kind()))?
                .compile_matcher();
            Ok(Value::Bool(changed.iter().any(|p| glob.is_match(p))))
        },
    );
    let workspace = Arc::new(ctx.workspace.clone());
    let _ = c.add_function(
        "hashFiles",
        move |cel::extractors::Arguments(args): cel::extractors::Arguments| -> Result<Value, ExecutionError> {
            let mut patterns = Vec::new();
            for a in args.iter() {
                match a {
                    Value::String(s) => patterns.push(s.as_str().to_string()),
                    other => {
                        return Err(ExecutionError::function_error(
                            "hashFiles",
                            format!("expected glob strings, found {}", type_name(other)),
                        ));
                    }
                }
            }
            let Some(root) = workspace.as_ref() else {
                return Err(ExecutionError::function_error(
                    "hashFiles",
                    "no workspace to hash files in",
                ));
            };
            crate::hash::hash_files(root, &patterns)
                .map(|h| str_value(&h))
                .map_err(|e| ExecutionError::function_error("hashFiles", e))
        },
    );
    c
}
