//! A dedicated tenant's profile, its name and settings, as its supervisor hands changes of it
//! to the tenant's running server: one line of JSON, `[name, settings]`, on the server's
//! standard input, and the server's `GET /health` answers carry the digest of the profile it
//! serves with ([`PROFILE_HEADER`]), so the supervisor knows when the change has been taken.

use axum::http::HeaderName;
use sha2::{Digest, Sha256};

/// The header of a dedicated server's `GET /health` answers that names its profile.
pub(crate) const PROFILE_HEADER: HeaderName = HeaderName::from_static("x-tenantry-profile");

/// The digest of a profile, as [`PROFILE_HEADER`] carries it.
pub(crate) fn digest(name: &str, settings: &serde_json::Value) -> String {
    let json = serde_json::to_vec(&(name, settings)).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..16])
}

/// A profile as the line that hands it over, newline included.
#[cfg(feature = "dedicated")]
pub(crate) fn line(name: &str, settings: &serde_json::Value) -> String {
    let mut line = serde_json::to_string(&(name, settings)).unwrap_or_default();
    line.push('\n');
    line
}

/// The profile a line hands over.
pub(crate) fn parse(line: &str) -> serde_json::Result<(String, serde_json::Value)> {
    serde_json::from_str(line)
}
