//! Secret tokens: made at random, compared in constant time (the `subtle` crate).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new random token: 32 bytes, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What is stored of a token: its SHA-256, hex. A stolen table then logs no one in.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `given` is `expected`, in time independent of where they differ.
pub fn same_token(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let token = random_token();
        assert_eq!(token.len(), 64);
        assert!(same_token(&token, &token.clone()));
        assert!(!same_token(&token, &random_token()));
        assert!(!same_token(&token, &token[..63]));
        assert!(!same_token("", "a"));
    }
}
