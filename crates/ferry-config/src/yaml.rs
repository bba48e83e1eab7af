//! Reading the YAML text into a tree with positions, and the problems only the raw
//! text shows: syntax errors and keys given twice.
//!
//! `marked_yaml` keeps the last of two equal keys silently (or stops at the first
//! with an option), so duplicates are found by a separate pass over the parser's
//! events, which reports every one of them.

use crate::Diagnostic;
use marked_yaml::{LoadError, Node};
use std::collections::HashMap;
use std::path::Path;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Parses `text`; on a syntax error returns no tree and that one problem.
pub(crate) fn load(file: &Path, text: &str) -> (Option<Node>, Vec<Diagnostic>) {
    if text.trim().is_empty() {
        return (
            None,
            vec![
                Diagnostic::file_error(file, "the file is empty".into())
                    .with_hint("a pipeline needs at least `jobs:` with one job and its `steps:`"),
            ],
        );
    }
    match marked_yaml::parse_yaml(0, text) {
        Ok(node) => (Some(node), duplicate_keys(file, text)),
        Err(e) => (None, vec![load_error(file, &e)]),
    }
}

fn load_error(file: &Path, e: &LoadError) -> Diagnostic {
    let at = |m: &marked_yaml::Marker| (m.line(), m.column());
    match e {
        LoadError::ScanError(m, scan) => {
            Diagnostic::new(file, at(m), "", format!("invalid YAML: {}", scan.info()))
                .with_hint("check the indentation and quoting around this position")
        }
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => {
            Diagnostic::new(file, at(m), "", "the file must be a mapping of keys")
                .with_hint("start with `name:`, `on:` and `jobs:` at the left margin")
        }
        LoadError::UnexpectedAnchor(m) => Diagnostic::new(
            file,
            at(m),
            "",
            "YAML anchors and aliases are not supported",
        )
        .with_hint("write the value out in full"),
        LoadError::MappingKeyMustBeScalar(m) => {
            Diagnostic::new(file, at(m), "", "a key must be a plain string")
        }
        LoadError::UnexpectedTag(m) => {
            Diagnostic::new(file, at(m), "", "YAML tags (`!tag`) are not supported")
                .with_hint("remove the tag; quote the value if it must stay a string")
        }
        LoadError::DuplicateKey(inner) => {
            let (line, column) = inner
                .key
                .span()
                .start()
                .map(|m| (m.line(), m.column()))
                .unwrap_or((0, 0));
            Diagnostic::new(
                file,
                (line, column),
                "",
                format!("\"{}\" is given twice", inner.key.as_str()),
            )
        }
    }
}

/// Finds every key given twice in one mapping.
fn duplicate_keys(file: &Path, text: &str) -> Vec<Diagnostic> {
    let mut finder = DuplicateFinder {
        file,
        stack: Vec::new(),
        found: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    // The text already parsed once, so an error here is not expected; if there is one
    // the duplicates found so far are still right.
    let _ = parser.load(&mut finder, false);
    finder.found
}

enum Frame {
    Mapping {
        path: String,
        keys: HashMap<String, (usize, usize)>,
        /// The key whose value comes next, or `None` when a key comes next.
        pending: Option<String>,
    },
    Sequence {
        path: String,
        index: usize,
    },
}

struct DuplicateFinder<'a> {
    file: &'a Path,
    stack: Vec<Frame>,
    found: Vec<Diagnostic>,
}

impl DuplicateFinder<'_> {
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Mapping { path, pending, .. }) => {
                join_key(path, pending.as_deref().unwrap_or(""))
            }
            Some(Frame::Sequence { path, index }) => format!("{path}[{index}]"),
        }
    }

    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { pending, .. }) => *pending = None,
            Some(Frame::Sequence { index, .. }) => *index += 1,
            None => {}
        }
    }
}

/// `parent.key`, or `key` at the top level.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for DuplicateFinder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping {
                    path,
                    keys,
                    pending: pending @ None,
                }) = self.stack.last_mut()
                {
                    let key = join_key(path, &value);
                    if let Some((line, column)) = keys.get(&value) {
                        let diagnostic = if path == "jobs" {
                            Diagnostic::new(
                                self.file,
                                at,
                                key,
                                format!("job \"{value}\" is defined twice"),
                            )
                            .with_hint(format!(
                                "the first definition is at line {line}:{column}; rename or remove one"
                            ))
                        } else {
                            Diagnostic::new(
                                self.file,
                                at,
                                key,
                                format!("\"{value}\" is given twice"),
                            )
                            .with_hint(format!(
                                "the first one is at line {line}:{column}; remove one of them"
                            ))
                        };
                        self.found.push(diagnostic);
                    } else {
                        keys.insert(value.clone(), at);
                    }
                    *pending = Some(value);
                } else {
                    self.value_done();
                }
            }
            Event::MappingStart(..) => {
                let path = self.child_path();
                self.stack.push(Frame::Mapping {
                    path,
                    keys: HashMap::new(),
                    pending: None,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path();
                self.stack.push(Frame::Sequence { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Alias(_) => self.value_done(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_duplicate_key_with_its_path() {
        let text = "jobs:\n  a:\n    steps:\n      - run: x\n        run: y\n  a:\n    env: {A: 1, A: 2}\n";
        let found: Vec<(String, usize, usize)> = duplicate_keys(Path::new("f"), text)
            .into_iter()
            .map(|d| (d.key, d.line, d.column))
            .collect();
        assert_eq!(
            found,
            [
                ("jobs.a.steps[0].run".to_string(), 5, 9),
                ("jobs.a".to_string(), 6, 3),
                ("jobs.a.env.A".to_string(), 7, 17),
            ]
        );
    }

    #[test]
    fn equal_keys_in_different_mappings_are_fine() {
        let text = "jobs:\n  a:\n    steps: [{run: x}, {run: y}]\n  b:\n    steps: [x]\n";
        assert!(duplicate_keys(Path::new("f"), text).is_empty());
    }
}
