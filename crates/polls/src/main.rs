use std::process::ExitCode;

use clap::Parser;
use polls::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    // Output piped into a reader that stops early (`polls tenants list | head`) ends the
    // process quietly, as with other Unix tools, instead of panicking in `println!`.
    // SAFETY: restoring a signal's default disposition at start-up, before any other thread
    // of ours exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Err(message) = polls::telemetry::init() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.message);
            ExitCode::from(error.code)
        }
    }
}
