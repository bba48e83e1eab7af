//! Every example in `examples/` is valid, and `ferry run` passes each of them.

use crate::support::{Repo, examples_dir, ferry, output, stdout};

fn example_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/ exists") {
        let path = entry.expect("entry").path().join("ferry.yml");
        if path.exists() {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_is_valid() {
    let files = example_files();
    assert!(
        files.len() >= 3,
        "expected at least three examples, found {files:?}"
    );
    for file in files {
        if let Err(diags) = ferry_config::load(&file) {
            panic!("{} is invalid:\n{diags}", file.display());
        }
    }
}

fn run_example(name: &str) -> String {
    let repo = Repo::copy_of(&examples_dir().join(name));
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("run").current_dir(repo.path()));
    let text = stdout(&out);
    assert!(out.status.success(), "example {name} failed:\n{text}");
    text
}

#[test]
fn static_site_example_passes() {
    let text = run_example("static-site");
    assert!(text.contains("check │ all links resolve"), "{text}");
    assert!(text.contains("publish │ would publish public/"), "{text}");
}

#[test]
fn rust_crate_example_passes() {
    let text = run_example("rust-crate");
    assert!(text.contains("test result: ok. 2 passed"), "{text}");
}

#[test]
fn service_container_example_passes_with_docker() {
    let text = run_example("service-container");
    assert!(text.contains("test │ all API checks passed"), "{text}");
}
