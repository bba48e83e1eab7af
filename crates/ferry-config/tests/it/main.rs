//! Integration tests of `ferry.yml` parsing, validation and expressions.
