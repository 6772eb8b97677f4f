//! The documentation's examples of the public entry points run with the test suite, since
//! nextest does not run doctests: `cargo test --doc -p tenantry`, against the tests'
//! PostgreSQL for the examples that need one.

#[test]
fn the_documentation_examples_run() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["test", "--doc", "-p", "tenantry"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
    assert!(!stdout.contains(" 0 passed"), "no example ran: {stdout}");
}
