//! [`ClientAddr`]: the address of the client a request came from, through the proxies the
//! operator trusts ([`TrustedProxies`]) and no others.
//!
//! The TCP peer is the client unless it is a trusted proxy. Then the `X-Forwarded-For`
//! chain is read from the right: each hop is the peer of the one after it, so the first hop
//! that is not a trusted proxy is the client. Whatever a client writes in the header itself
//! is to the left of that hop and never read. With nothing trusted (the default), the header
//! is ignored.
//!
//! Only `X-Forwarded-For` is read, the header nginx, Caddy, HAProxy, Traefik, cloud load
//! balancers and tenantry's own router all append to. RFC 7239's `Forwarded` is not: a proxy
//! that writes one of the two passes the other through as the client sent it, so reading
//! both would let a client name itself.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::http::rejection::TenancyRejection;

/// Addresses and networks of the proxies whose forwarding headers are believed, such as
/// `127.0.0.1,10.0.0.0/8,::1`. Empty by default: no header is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Whether `address` is one of the trusted proxies.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These proxies and `more`.
    pub fn with(&self, more: &[IpNet]) -> Self {
        Self(self.0.iter().chain(more).copied().collect())
    }

    /// The loopback addresses a local proxy connects from, `127.0.0.1` and `::1`.
    pub fn loopback() -> [IpNet; 2] {
        [
            "127.0.0.1/32".parse().expect("a network"),
            "::1/128".parse().expect("a network"),
        ]
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for(headers).rev() {
            match hop {
                Some(hop) => {
                    client = canonical(hop);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // A hop that hides its address (`unknown`, an obfuscated name) ends what
                // can be known: the last trusted proxy is the client as far as we can tell.
                None => return client,
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses (`127.0.0.1`, `::1`) and networks (`10.0.0.0/8`).
    fn from_str(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!("'{item}' is not an IP address or network (such as 10.0.0.0/8)")
                })?,
            };
            nets.push(net);
        }
        Ok(Self(nets.into()))
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// An IPv4 address mapped into IPv6 is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The hops a request passed, first to last, from `X-Forwarded-For` (several headers are
/// one list). `None` for a hop that is not an address (`unknown`, an obfuscated name).
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|hop| node_address(hop.trim()))
}

/// The address of a node as proxies write it: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080` or `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(inner, _)| inner.parse().ok())
}

/// The client's address, as [`TrustedProxies::client`] found it when the connection's
/// request came in ([`serve`](crate::serve) sets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// What to count one client by, for rate limits: its IPv4 address, or the /64 network
    /// of its IPv6 address (what one subscriber is usually given, so that one client cannot
    /// take a new key per request).
    pub fn subscriber(self) -> IpAddr {
        match canonical(self.0) {
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            v4 => v4,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().copied().ok_or_else(|| {
            tracing::error!("ClientAddr was asked of a request not served by tenantry::serve");
            TenancyRejection::Internal("Client address missing.")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ipv6_network_is_one_subscriber() {
        let of = |address: &str| ClientAddr(address.parse().unwrap()).subscriber();
        assert_eq!(of("2001:db8:1:2::1"), of("2001:db8:1:2:ffff::9"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("::ffff:192.0.2.1"), of("192.0.2.1"));
        assert_ne!(of("192.0.2.1"), of("192.0.2.2"));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nothing_trusted_means_the_peer() {
        let none = TrustedProxies::default();
        let spoofed = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(none.client(ip("203.0.113.1"), &spoofed), ip("203.0.113.1"));
    }

    #[test]
    fn a_trusted_chain_is_read_from_the_right() {
        let proxies: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        // The client wrote a false first hop; nginx (10.0.0.2) appended the real one, and the
        // router (127.0.0.1) appended nginx.
        let chain = headers(&[("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &chain), ip("203.0.113.9"));
        // From an untrusted peer, the header means nothing.
        assert_eq!(proxies.client(ip("203.0.113.1"), &chain), ip("203.0.113.1"));
        // Two headers are one list; a mapped IPv4 peer is its IPv4 address.
        let split = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            proxies.client(ip("::ffff:127.0.0.1"), &split),
            ip("203.0.113.9")
        );
        // Only proxies all the way: the leftmost hop is as far as it goes.
        let inside = headers(&[("x-forwarded-for", "10.1.1.1")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &inside), ip("10.1.1.1"));
    }

    #[test]
    fn only_x_forwarded_for_is_read_and_its_forms_parse() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        // nginx appended the real client to X-Forwarded-For and passed the client's own
        // Forwarded through.
        let both = headers(&[
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "[2001:db8::5]:4711"),
        ]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &both), ip("2001:db8::5"));
        let ported = headers(&[("x-forwarded-for", "203.0.113.4:8080")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &ported), ip("203.0.113.4"));
        let hidden = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &hidden), ip("127.0.0.1"));
        let only_forwarded = headers(&[("forwarded", "for=198.51.100.7")]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &only_forwarded),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn lists_parse_or_say_what_is_wrong() {
        let proxies: TrustedProxies = "127.0.0.1,::1, 10.0.0.0/8".parse().unwrap();
        assert_eq!(proxies.to_string(), "127.0.0.1/32,::1/128,10.0.0.0/8");
        assert!(TrustedProxies::from_str("").unwrap().is_empty());
        assert_eq!(
            TrustedProxies::from_str("nginx").unwrap_err(),
            "'nginx' is not an IP address or network (such as 10.0.0.0/8)"
        );
    }
}
