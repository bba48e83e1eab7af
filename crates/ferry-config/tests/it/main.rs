//! Integration tests of `ferry.yml` parsing, validation and expressions.

mod deploy;
mod errors;
mod eval;
mod parse;

use ferry_config::{Diagnostics, Pipeline};
use std::path::Path;

/// Parses `text` as `ferry.yml`.
pub fn parse(text: &str) -> Result<Pipeline, Diagnostics> {
    ferry_config::parse(Path::new("ferry.yml"), text)
}

/// The rendered problems of an invalid file.
pub fn errors(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected the file to be rejected"),
        Err(d) => d.to_string(),
    }
}

/// Parses a file that must be valid.
pub fn valid(text: &str) -> Pipeline {
    match parse(text) {
        Ok(p) => p,
        Err(d) => panic!("expected a valid file, got:\n{d}"),
    }
}
