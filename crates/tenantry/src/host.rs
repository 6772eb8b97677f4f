//! Parsing the `Host` of a request into a normalized [`HostName`].

use std::fmt;

/// A request's host: lower-cased, port and trailing dot removed, each label checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostName(String);

/// Why a `Host` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("no host given")]
    /// The request named no host.
    Missing,
    #[error("not a valid host name")]
    /// The host is not a valid DNS name.
    Invalid,
    #[error("the port is not a number from 0 to 65535")]
    /// The port is not a number from 0 to 65535.
    Port,
    #[error("more than one Host header")]
    /// The request had more than one `Host` header.
    Duplicate,
}

impl HostName {
    /// A domain name as a person gives it (a custom domain, Caddy's question): what
    /// [`HostName::parse`] accepts, without a port.
    pub fn parse_domain(raw: &str) -> Result<Self, HostError> {
        match raw.contains(':') {
            true => Err(HostError::Invalid),
            false => Self::parse(raw),
        }
    }

    /// Normalizes a raw `Host` value such as `Thor.Polls.localhost:8000`.
    ///
    /// Accepts DNS names (labels of 1-63 characters from `a-z0-9-`, not starting or ending
    /// with `-`, 253 characters in all) and IPv4 literals; anything else, including non-ASCII
    /// (clients send IDNA as punycode) and IPv6 literals, is refused.
    pub fn parse(raw: &str) -> Result<Self, HostError> {
        let host = match raw.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                port.parse::<u16>().map_err(|_| HostError::Port)?;
                host
            }
            Some(_) => return Err(HostError::Invalid),
            None => raw,
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() || host.len() > 253 {
            return Err(HostError::Invalid);
        }
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if host.split('.').all(label_ok) {
            Ok(Self(host))
        } else {
            Err(HostError::Invalid)
        }
    }

    /// The normalized host.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label when this host is exactly one label below `base` (`thor` for
    /// `thor.polls.localhost` under `polls.localhost`).
    pub fn subdomain_of(&self, base: &str) -> Option<&str> {
        let label = self.0.strip_suffix(base)?.strip_suffix('.')?;
        (!label.contains('.')).then_some(label)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_port_and_trailing_dot() {
        for raw in [
            "thor.polls.localhost",
            "THOR.Polls.LocalHost:8000",
            "thor.polls.localhost.",
        ] {
            assert_eq!(
                HostName::parse(raw).unwrap().as_str(),
                "thor.polls.localhost"
            );
        }
        assert_eq!(
            HostName::parse("127.0.0.1:80").unwrap().as_str(),
            "127.0.0.1"
        );
        assert!(HostName::parse("thor.polls.localhost:65535").is_ok());
    }

    #[test]
    fn refuses_ports_out_of_range() {
        for raw in ["thor.polls.localhost:65536", "a.b:99999999999999999999"] {
            assert_eq!(HostName::parse(raw), Err(HostError::Port), "{raw:?}");
        }
    }

    #[test]
    fn refuses_malformed_hosts() {
        let long_label = format!("{}.polls.localhost", "a".repeat(300));
        let long_host = vec!["abc"; 100].join(".");
        for raw in [
            "",
            ":8000",
            "thor.polls.localhost:",
            "thor.polls.localhost:80x",
            "thor..polls.localhost",
            "-thor.polls.localhost",
            "thor-.polls.localhost",
            "th_or.polls.localhost",
            "'; DROP SCHEMA public; --",
            "../../etc/passwd",
            "þór.polls.localhost",
            "[::1]:8000",
            "thor polls",
            long_label.as_str(),
            long_host.as_str(),
        ] {
            assert_eq!(HostName::parse(raw), Err(HostError::Invalid), "{raw:?}");
        }
    }

    #[test]
    fn finds_exactly_one_label_below_the_base() {
        let base = "polls.localhost";
        let host = |s| HostName::parse(s).unwrap();
        assert_eq!(
            host("thor.polls.localhost").subdomain_of(base),
            Some("thor")
        );
        assert_eq!(host("a.thor.polls.localhost").subdomain_of(base), None);
        assert_eq!(host("polls.localhost").subdomain_of(base), None);
        assert_eq!(host("thorpolls.localhost").subdomain_of(base), None);
    }
}
