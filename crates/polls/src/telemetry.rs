//! Logging: one line per request (from tenantry's layer), in text or JSON.
//!
//! `LOG_FORMAT=json` writes one JSON object per line, for machines; otherwise plain text,
//! coloured only when standard error is a terminal and `NO_COLOR` is unset. `RUST_LOG`
//! filters as usual (default `info,sqlx=warn` for servers; `info,sqlx=error` for other
//! commands, whose users are not to read the driver's slow-statement warnings).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber as the environment says, for a serving command or
/// another; an error names a bad `LOG_FORMAT`.
pub fn init(serving: bool) -> Result<(), String> {
    let default = if serving {
        "info,sqlx=warn"
    } else {
        "info,sqlx=error"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().flatten_event(true).init(),
        Ok("text") | Err(_) => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init()
        }
        Ok(other) => return Err(format!("LOG_FORMAT '{other}': use text or json")),
    }
    Ok(())
}
