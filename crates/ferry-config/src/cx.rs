//! Reading typed values out of the YAML tree while collecting every problem.
//!
//! Each reader takes the node and its dotted key, returns `None` (after recording a
//! [`Diagnostic`]) when the node has the wrong shape, and never stops the walk: the
//! caller goes on with the next key so one pass finds every problem.

use crate::Diagnostic;
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use std::path::Path;
use std::time::Duration;

/// A value with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct At<T> {
    pub value: T,
    pub pos: (usize, usize),
    pub key: String,
}

/// The walk's state: the file and the problems found so far.
pub(crate) struct Cx<'a> {
    pub file: &'a Path,
    pub diags: Vec<Diagnostic>,
}

/// 1-based line and column where `node` starts.
pub(crate) fn pos(node: &Node) -> (usize, usize) {
    node.span()
        .start()
        .map(|m| (m.line(), m.column()))
        .unwrap_or((0, 0))
}

/// 1-based line and column of a mapping key.
pub(crate) fn key_pos(key: &MarkedScalarNode) -> (usize, usize) {
    key.span()
        .start()
        .map(|m| (m.line(), m.column()))
        .unwrap_or((0, 0))
}

/// What kind of YAML value `node` is, for "found …" messages.
pub(crate) fn kind(node: &Node) -> &'static str {
    match node {
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
        Node::Scalar(s) => match scalar_kind(s) {
            ScalarKind::Null => "nothing",
            ScalarKind::Bool(_) => "a boolean",
            ScalarKind::Number => "a number",
            ScalarKind::String => "a string",
        },
    }
}

/// How a plain scalar reads; quoted scalars are always strings.
pub(crate) enum ScalarKind {
    Null,
    Bool(bool),
    Number,
    String,
}

pub(crate) fn scalar_kind(s: &MarkedScalarNode) -> ScalarKind {
    if !s.may_coerce() {
        return ScalarKind::String;
    }
    if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return ScalarKind::Null;
    }
    if let Some(b) = s.as_bool() {
        return ScalarKind::Bool(b);
    }
    // Rust also reads `inf` and `nan` as floats; in a YAML file they are words.
    let numeric = s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
    if s.as_i64().is_some() || (numeric && s.as_f64().is_some()) {
        return ScalarKind::Number;
    }
    ScalarKind::String
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let normal = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            let d = if normal(c) == normal(word) {
                0
            } else {
                strsim::osa_distance(word, c)
            };
            (d <= limit).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl<'a> Cx<'a> {
    pub fn new(file: &'a Path) -> Self {
        Cx {
            file,
            diags: Vec::new(),
        }
    }

    /// Records a problem.
    pub fn error(&mut self, pos: (usize, usize), key: &str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, pos, key, message));
    }

    /// Records a problem with a hint.
    pub fn error_hint(
        &mut self,
        pos: (usize, usize),
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::new(self.file, pos, key, message).with_hint(hint));
    }

    /// Records "expected …, found …".
    pub fn wrong_type(&mut self, node: &Node, key: &str, expected: &str) {
        self.error(
            pos(node),
            key,
            format!("expected {expected}, found {}", kind(node)),
        );
    }

    /// The node as a mapping whose keys are all in `allowed`; unknown keys are
    /// reported with a did-you-mean.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        expected: &str,
        allowed: &[&str],
    ) -> Option<&'n MarkedMappingNode> {
        let Some(map) = node.as_mapping() else {
            self.wrong_type(node, key, expected);
            return None;
        };
        for (k, _) in map.iter() {
            if !allowed.contains(&k.as_str()) {
                let full = join_key(key, k.as_str());
                let message = format!("unknown key `{}`", k.as_str());
                if let Some(hint) = foreign_key_hint(k.as_str()) {
                    self.error_hint(key_pos(k), &full, message, hint);
                    continue;
                }
                match suggest(k.as_str(), allowed.iter().copied()) {
                    Some(s) => {
                        self.error_hint(key_pos(k), &full, message, format!("did you mean `{s}`?"))
                    }
                    None => self.error_hint(
                        key_pos(k),
                        &full,
                        message,
                        format!("expected one of {}", quote_list(allowed)),
                    ),
                }
            }
        }
        Some(map)
    }

    /// A plain string: numbers, booleans and nothing are rejected.
    pub fn string(&mut self, node: &Node, key: &str) -> Option<At<String>> {
        match node {
            Node::Scalar(s) if matches!(scalar_kind(s), ScalarKind::String) => Some(At {
                value: s.as_str().to_string(),
                pos: pos(node),
                key: key.to_string(),
            }),
            _ => {
                self.wrong_type(node, key, "a string");
                None
            }
        }
    }

    /// Any scalar read as text (`1`, `true` and strings); nothing is rejected.
    pub fn text(&mut self, node: &Node, key: &str) -> Option<At<String>> {
        match node {
            Node::Scalar(s) if !matches!(scalar_kind(s), ScalarKind::Null) => Some(At {
                value: s.as_str().to_string(),
                pos: pos(node),
                key: key.to_string(),
            }),
            _ => {
                self.wrong_type(node, key, "a string");
                None
            }
        }
    }

    /// A string or a list of strings.
    pub fn string_list(&mut self, node: &Node, key: &str) -> Option<Vec<At<String>>> {
        const EXPECTED: &str = "a string or a list of strings";
        match node {
            Node::Scalar(s) if matches!(scalar_kind(s), ScalarKind::String) => {
                self.string(node, key).map(|s| vec![s])
            }
            Node::Sequence(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let k = format!("{key}[{i}]");
                    match item {
                        Node::Scalar(s) if matches!(scalar_kind(s), ScalarKind::String) => {
                            out.extend(self.string(item, &k));
                        }
                        _ => {
                            ok = false;
                            self.error(
                                pos(item),
                                &k,
                                format!(
                                    "expected a list of strings, found {} in the list",
                                    kind(item)
                                ),
                            );
                        }
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.wrong_type(node, key, EXPECTED);
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match node {
            Node::Scalar(s) => match scalar_kind(s) {
                ScalarKind::Bool(b) => Some(b),
                _ => {
                    self.wrong_type(node, key, "`true` or `false`");
                    None
                }
            },
            _ => {
                self.wrong_type(node, key, "`true` or `false`");
                None
            }
        }
    }

    /// A whole number in `0..=max`.
    pub fn number(&mut self, node: &Node, key: &str, max: u64) -> Option<u64> {
        if let Node::Scalar(s) = node
            && matches!(scalar_kind(s), ScalarKind::Number)
        {
            match s.as_u64() {
                Some(n) if n <= max => return Some(n),
                _ => {
                    self.error(
                        pos(node),
                        key,
                        format!(
                            "expected a whole number from 0 to {max}, found {}",
                            s.as_str()
                        ),
                    );
                    return None;
                }
            }
        }
        self.wrong_type(node, key, "a whole number");
        None
    }

    /// A duration such as `10m` or `1h 30m`.
    pub fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let text = self.text(node, key)?;
        match humantime::parse_duration(&text.value) {
            Ok(d) if d.is_zero() => {
                self.error_hint(
                    text.pos,
                    key,
                    "a timeout of zero is not allowed",
                    "remove the key for no timeout",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error_hint(
                    text.pos,
                    key,
                    format!("invalid duration \"{}\": {e}", text.value),
                    "write a number with a unit, e.g. `90s`, `10m` or `1h 30m`",
                );
                None
            }
        }
    }

    /// A mapping of names to scalar values (`env`); `NAME:` with nothing is "".
    pub fn env(&mut self, node: &Node, key: &str) -> Option<IndexMap<String, At<String>>> {
        let Some(map) = node.as_mapping() else {
            self.wrong_type(node, key, "a mapping of names to values");
            return None;
        };
        let mut out = IndexMap::new();
        for (k, v) in map.iter() {
            let full = join_key(key, k.as_str());
            let name = k.as_str();
            let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.chars().next().is_some_and(|c| !c.is_ascii_digit());
            if !valid {
                self.error_hint(
                    key_pos(k),
                    &full,
                    format!("invalid environment variable name \"{name}\""),
                    "use letters, digits and `_`, not starting with a digit",
                );
            }
            let value = match v {
                Node::Scalar(s) if matches!(scalar_kind(s), ScalarKind::Null) => At {
                    value: String::new(),
                    pos: pos(v),
                    key: full,
                },
                Node::Scalar(_) => match self.text(v, &full) {
                    Some(t) => t,
                    None => continue,
                },
                _ => {
                    self.wrong_type(v, &full, "a string, number or boolean");
                    continue;
                }
            };
            out.insert(k.as_str().to_string(), value);
        }
        Some(out)
    }
}

/// Hints for keys people bring from GitHub Actions and GitLab CI.
fn foreign_key_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "uses" | "with" => "Ferry steps run shell commands: write the command under `run:`",
        "script" | "before_script" | "after_script" => {
            "write the commands as `steps:`, e.g. `steps: [make test]`"
        }
        "stage" | "stages" => "order jobs with `needs:` instead of stages",
        _ => return None,
    })
}

/// "`a`, `b` or `c`".
pub(crate) fn quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_and_hyphen_underscore_swaps() {
        let keys = [
            "needs",
            "steps",
            "allow_failure",
            "runs-on",
            "working-directory",
        ];
        assert_eq!(suggest("neds", keys), Some("needs"));
        assert_eq!(suggest("setps", keys), Some("steps"));
        assert_eq!(suggest("allow-failure", keys), Some("allow_failure"));
        assert_eq!(suggest("runs_on", keys), Some("runs-on"));
        assert_eq!(
            suggest("working_directory", keys),
            Some("working-directory")
        );
        assert_eq!(suggest("image", keys), None);
    }

    #[test]
    fn words_that_rust_reads_as_floats_stay_strings() {
        let kind = |text: &str| kind(&Node::Scalar(MarkedScalarNode::from(text)));
        assert_eq!(kind("inf"), "a string");
        assert_eq!(kind("NaN"), "a string");
        assert_eq!(kind("1.5e3"), "a number");
        assert_eq!(kind("-2"), "a number");
        assert_eq!(kind("true"), "a boolean");
        assert_eq!(kind("~"), "nothing");
    }

    #[test]
    fn quote_list_reads_as_a_sentence() {
        assert_eq!(quote_list(&["a"]), "`a`");
        assert_eq!(quote_list(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
