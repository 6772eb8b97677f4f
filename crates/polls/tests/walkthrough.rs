//! The README's walkthrough of the API, run as written against a demo.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The shell block under the README's heading `heading`.
fn readme_block(heading: &str) -> String {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split_once(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section '{heading}' in the README"))
        .1;
    let block = section.split_once("```sh\n").expect("a shell block").1;
    block
        .split_once("```")
        .expect("the block's end")
        .0
        .to_owned()
}

#[test]
fn the_api_walkthrough_runs_as_written_against_the_demo() {
    let data = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("demo")
        .env("DATA_DIR", data.path().join("data"))
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .env_remove("DATABASE_URL")
        .env_remove("BASE_DOMAIN")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(demo.stdout.take().unwrap());
    let serving = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("Serving on"));
    assert!(serving, "the demo did not come up");
    // As a reader runs it, but with every failed request failing the run.
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl --fail-with-body \"$@\"; }}\n{}",
        readme_block("Using the polls API").replace(":8000", &format!(":{port}"))
    );
    let run = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains(r#""username":"ann""#), "{stdout}");
    assert!(
        stdout.trim_end().ends_with('}'),
        "the vote's answer: {stdout}"
    );
}
