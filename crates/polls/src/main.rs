use std::process::ExitCode;

use polls::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    if !cli.command.serves() {
        // Nothing but this thread exists yet: the runtime is built below.
        tenantry::dedicated::process::restore_default_sigpipe();
    }
    if cli.command.serves()
        && let Err(error) = tenantry::dedicated::process::seal_process()
    {
        eprintln!("error: cannot make the process undumpable: {error}");
        return ExitCode::FAILURE;
    }
    if let Err(message) = polls::telemetry::init(cli.command.serves()) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.message);
            ExitCode::from(error.code)
        }
    }
}
