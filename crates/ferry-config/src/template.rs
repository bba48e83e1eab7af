//! `${{ … }}` templates: splitting, checking, rendering and finding secrets.

use crate::expr::{
    EvalContext, ExprError, Place, Problem, Refs, check, compile, context, execution_message,
    references, type_name,
};
use cel::Value;
use std::collections::BTreeSet;

/// A piece of a template.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece<'a> {
    /// Literal text.
    Text(&'a str),
    /// The expression between `${{` and `}}`, untrimmed.
    Expr(&'a str),
}

/// Splits a template into text and expressions. A `}}` inside a quoted CEL string
/// does not end the expression.
pub(crate) fn split(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${{") {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let body = &rest[start + 3..];
        let end = find_close(body)
            .ok_or_else(|| "unclosed `${{`: the expression has no closing `}}`".to_string())?;
        pieces.push(Piece::Expr(&body[..end]));
        rest = &body[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'\'' || b == b'"' {
                    quote = Some(b);
                } else if b == b'}' && bytes.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// Checks every expression of a template; returns what they refer to (as far as
/// they parse) and the problems.
pub(crate) fn check_template(template: &str) -> (Refs, Vec<Problem>) {
    let pieces = match split(template) {
        Ok(p) => p,
        Err(m) => {
            return (
                Refs::default(),
                vec![(
                    m,
                    Some("close it with `}}`, e.g. `${{ matrix.os }}`".to_string()),
                )],
            );
        }
    };
    let mut all = Refs::default();
    let mut problems = Vec::new();
    for piece in pieces {
        if let Piece::Expr(src) = piece {
            let (refs, p) = check(src.trim(), Place::Template);
            if let Some(refs) = refs {
                merge(&mut all, refs);
            }
            problems.extend(
                p.into_iter()
                    .map(|(m, h)| (format!("in `${{{{{src}}}}}`: {m}"), h)),
            );
        }
    }
    (all, problems)
}

fn merge(into: &mut Refs, from: Refs) {
    into.roots.extend(from.roots);
    into.secrets.extend(from.secrets);
    into.needs.extend(from.needs);
    into.matrix.extend(from.matrix);
    into.ferry.extend(from.ferry);
    into.functions.extend(from.functions);
    into.globs.extend(from.globs);
}

/// Replaces every `${{ expr }}` in `template` by the value of `expr`.
///
/// Strings render as they are, numbers and booleans in their plain form; lists,
/// maps and null are an error.
pub fn interpolate(template: &str, ctx: &EvalContext) -> Result<String, ExprError> {
    let err = |expression: &str, message: String| ExprError {
        expression: expression.to_string(),
        message,
    };
    let pieces = split(template).map_err(|m| err(template, m))?;
    if !pieces.iter().any(|p| matches!(p, Piece::Expr(_))) {
        return Ok(template.to_string());
    }
    let cel_ctx = context(ctx, Place::Template);
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(src) => {
                let src = src.trim();
                let program = compile(src).map_err(|m| err(src, m))?;
                let value = program
                    .execute(&cel_ctx)
                    .map_err(|e| err(src, execution_message(&e)))?;
                match value {
                    Value::String(s) => out.push_str(&s),
                    Value::Int(i) => out.push_str(&i.to_string()),
                    Value::UInt(u) => out.push_str(&u.to_string()),
                    Value::Float(f) => out.push_str(&f.to_string()),
                    Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                    other => {
                        return Err(err(
                            src,
                            format!(
                                "a template must produce a string, number or boolean, found {}",
                                type_name(&other)
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Names of the secrets a template references as `secrets.NAME` (or
/// `secrets['NAME']`), found in the parsed expressions; unparsable parts are skipped.
pub fn referenced_secrets(template: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(pieces) = split(template) else {
        return names;
    };
    for piece in pieces {
        if let Piece::Expr(src) = piece
            && let Ok(program) = compile(src.trim())
        {
            names.extend(references(&program).secrets);
        }
    }
    names
}

impl crate::model::Job {
    /// Names of every secret the job's templates reference: the pipeline's `env`
    /// (pass [`crate::Pipeline::env`]), the job's `env`, `image`, `services` (image,
    /// env, command), `cache.key`, `concurrency.group` and each step's `name`, `run`
    /// and `env`. The engine fills [`EvalContext::secrets`] with exactly these.
    pub fn referenced_secrets(
        &self,
        pipeline_env: &indexmap::IndexMap<String, String>,
    ) -> BTreeSet<String> {
        let mut templates: Vec<&str> = Vec::new();
        templates.extend(pipeline_env.values().map(String::as_str));
        templates.extend(self.env.values().map(String::as_str));
        templates.extend(self.image.as_deref());
        for s in self.services.values() {
            templates.push(&s.image);
            templates.extend(s.env.values().map(String::as_str));
            templates.extend(s.command.iter().flatten().map(String::as_str));
        }
        templates.extend(self.cache.as_ref().map(|c| c.key.as_str()));
        templates.extend(self.concurrency.as_ref().map(|c| c.group.as_str()));
        for step in &self.steps {
            templates.extend(step.name.as_deref());
            templates.push(&step.run);
            templates.extend(step.env.values().map(String::as_str));
        }
        templates.into_iter().flat_map(referenced_secrets).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_finds_text_and_expressions() {
        assert_eq!(
            split("a ${{ x }} b ${{y}}").unwrap(),
            [
                Piece::Text("a "),
                Piece::Expr(" x "),
                Piece::Text(" b "),
                Piece::Expr("y")
            ]
        );
        assert_eq!(split("plain").unwrap(), [Piece::Text("plain")]);
        assert_eq!(split("").unwrap(), []);
    }

    #[test]
    fn split_ignores_closing_braces_inside_quoted_strings() {
        assert_eq!(
            split(r#"${{ "}}" + '\'}}' }}!"#).unwrap(),
            [Piece::Expr(r#" "}}" + '\'}}' "#), Piece::Text("!")]
        );
    }

    #[test]
    fn split_rejects_an_unclosed_expression() {
        assert!(split("a ${{ b").is_err());
        assert!(
            split("a ${{ 'b }}").is_err(),
            "the quote swallows the braces"
        );
    }

    #[test]
    fn check_template_reports_each_bad_expression() {
        let (refs, problems) = check_template("${{ secrets.A }} ${{ nope }} ${{ 1 + }}");
        assert_eq!(refs.secrets.into_iter().collect::<Vec<_>>(), ["A"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
