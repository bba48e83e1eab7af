//! The expression language of `if:` conditions and `${{ … }}` templates (CEL).

use ferry_types::JobResult;
use indexmap::IndexMap;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A compiled `if:` expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The expression as written.
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

impl Expr {
    /// Evaluates the condition; non-boolean results are an error.
    pub fn evaluate(&self, ctx: &EvalContext) -> Result<bool, ExprError> {
        let _ = ctx;
        todo!("implemented by the config work")
    }
}

/// Replaces every `${{ expr }}` in `template` by the value of `expr`.
pub fn interpolate(template: &str, ctx: &EvalContext) -> Result<String, ExprError> {
    let _ = (template, ctx);
    todo!("implemented by the config work")
}

/// Names of the secrets a template references as `secrets.NAME`.
pub fn referenced_secrets(template: &str) -> BTreeSet<String> {
    let _ = template;
    todo!("implemented by the config work")
}
