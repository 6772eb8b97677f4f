//! A server's health check: `GET /health`, read without an HTTP client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::profile::PROFILE_HEADER;

/// What a server's `GET /health` answered.
pub(crate) struct Health {
    pub status: u16,
    /// The `version` its JSON body names.
    pub version: Option<String>,
    /// Its [`PROFILE_HEADER`], which a dedicated tenant's server sets.
    pub profile: Option<String>,
}

/// `GET /health` for `host` at `address`; an error if no reply comes `within`.
pub(crate) async fn health(
    address: SocketAddr,
    host: &str,
    within: Duration,
) -> std::io::Result<Health> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(
                format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut reply = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut reply).await?;
        let status = reply
            .get(9..12)
            .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP reply"))?;
        let (head, body) = match reply.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => (&reply[..at], &reply[at + 4..]),
            None => (&reply[..], &[][..]),
        };
        let version = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|json| Some(json.get("version")?.as_str()?.to_owned()));
        let profile = String::from_utf8_lossy(head).lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(PROFILE_HEADER.as_str())
                .then(|| value.trim().to_owned())
        });
        Ok(Health {
            status,
            version,
            profile,
        })
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| std::io::Error::other(format!("no reply within {within:?}")))?
}
