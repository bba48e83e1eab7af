//! `ferry.yml`: the pipeline file, compiled like a program.
//!
//! Parsing goes in passes: the YAML is read into a tree with source positions
//! (`yaml`, which also finds keys given twice from the parser's events); the tree is
//! walked once (`convert`, `job`, `settings`, `matrix`; `deploy`, `environment` and
//! `strategy` for the `deploy:` section), checking keys and types level
//! by level and converting into the validated [`model`] types as it goes; then the
//! checks that need the whole file run (`graph`: unknown `needs` and cycles). Every
//! reader records its problem and lets the walk go on, so [`parse`] returns either a
//! [`Pipeline`] or every [`Diagnostic`] of the file at once, sorted by position.
//!
//! Start reading at [`parse`]. Expressions (`if:` and `${{ … }}`) live in [`expr`]
//! (CEL via the `cel` crate) and `template`; the JSON schema for editors is derived
//! from the wire structs in `schema`, which a test keeps in step with the walk's key
//! tables. The user-facing references are `docs/pipeline.md` and `docs/deploy.md`.
#![deny(missing_docs)]

mod convert;
mod cx;
mod deploy;
pub mod diagnostic;
mod environment;
pub mod expr;
mod graph;
mod hash;
mod job;
mod matrix;
pub mod model;
mod schema;
mod schema_deploy;
mod settings;
mod strategy;
mod template;
mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use expr::{EvalContext, Expr, ExprError, RunFacts, interpolate, referenced_secrets};
pub use model::*;

use std::path::Path;

/// Reads and compiles the pipeline file at `path`.
pub fn load(path: &Path) -> Result<Pipeline, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(Diagnostics::from(Diagnostic::file_error(
            path,
            format!("cannot read the file: {e}"),
        ))),
    }
}

/// Compiles pipeline text; `source` is the path shown in messages.
pub fn parse(source: &Path, text: &str) -> Result<Pipeline, Diagnostics> {
    let (root, found) = yaml::load(source, text);
    let mut cx = cx::Cx::new(source);
    cx.diags = found;
    let pipeline = root.and_then(|root| convert::pipeline(&mut cx, &root, default_name(source)));
    let mut diags = Diagnostics(cx.diags);
    match pipeline {
        Some(p) if diags.is_empty() => Ok(p),
        _ => {
            diags.sort();
            Err(diags)
        }
    }
}

/// The name of the directory holding the file, for pipelines without `name`.
fn default_name(source: &Path) -> String {
    let dir = match source.parent() {
        Some(p) if !p.as_os_str().is_empty() => Some(p.to_path_buf()),
        _ => std::env::current_dir().ok(),
    };
    dir.as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".to_string())
}

impl Pipeline {
    /// Expands matrix jobs into their instances, in file order.
    pub fn instances(&self) -> Vec<JobInstance> {
        matrix::instances(self)
    }
}

/// The JSON schema of `ferry.yml`, for editors (`ferry schema`).
pub fn schema() -> serde_json::Value {
    schema::schema()
}
