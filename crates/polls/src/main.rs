use std::process::ExitCode;

use polls::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    if !cli.command.serves() {
        // A command's output piped into a reader that stops early (`polls tenants list |
        // head`) ends the process quietly, as with other Unix tools, instead of panicking in
        // `println!`. Serving commands keep Rust's default (SIGPIPE ignored): a client that
        // hangs up mid-response is an error on that connection, never the process's end.
        // SAFETY: no other thread exists yet (the runtime is built below), so nothing can
        // race with the change of disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if cli.command.serves()
        && let Err(error) = tenantry::dedicated::seal_process()
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
