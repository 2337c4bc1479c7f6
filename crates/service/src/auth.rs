//! Tenants and their bearer tokens. The tokens file holds one `TENANT SHA256HEX` line per
//! token (`#` starts a comment): only hashes are stored, so the file does not give a token
//! away. Tokens are 256 random bits from the OS, so a plain SHA-256 (no slow hash) is
//! enough to make the stored form useless to whoever reads it.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Prefix of every token (recognisable in logs and secret scanners).
pub const TOKEN_PREFIX: &str = "vly_";

/// The tenants that may use the service, by the hash of their tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], String>,
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Tokens {
    /// Parses a tokens file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_hash = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(tenant), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {}: expected `TENANT SHA256HEX`", i + 1));
            };
            if !valid_tenant(tenant) {
                return Err(format!(
                    "line {}: tenant names are 1 to 64 of A-Z a-z 0-9 - _ .",
                    i + 1
                ));
            }
            let hash = decode_hex32(hex)
                .ok_or_else(|| format!("line {}: the hash is not 64 hex digits", i + 1))?;
            by_hash.insert(hash, tenant.to_string());
        }
        Ok(Self { by_hash })
    }

    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The tenant of a presented token, if any.
    pub fn tenant(&self, token: &str) -> Option<&str> {
        self.by_hash.get(&hash_token(token)).map(String::as_str)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// No tokens at all (the server refuses to start so).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (256 bits from the OS) and the tokens-file line that admits it for
/// `tenant`.
pub fn new_token(tenant: &str) -> Result<(String, String), String> {
    if !valid_tenant(tenant) {
        return Err("tenant names are 1 to 64 of A-Z a-z 0-9 - _ .".into());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("the OS random source failed: {e}"))?;
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let line = format!("{tenant} {}", hex(&hash_token(&token)));
    Ok((token, line))
}

/// A random identifier (128 bits from the OS, 32 hex digits) for uploads and jobs.
pub fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("the OS random source failed: {e}"))?;
    Ok(hex(&bytes))
}

/// True for an identifier [`new_id`] could have made: ids from clients are checked before
/// any lookup or path.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let (token, line) = new_token("alice").unwrap();
        let tokens = Tokens::parse(&format!("# operators\n{line}\n\n")).unwrap();
        assert_eq!(tokens.tenant(&token), Some("alice"));
        assert_eq!(tokens.tenant("vly_wrong"), None);
        assert!(!line.contains(&token), "only the hash is stored");
        assert!(Tokens::parse("alice").is_err());
        assert!(Tokens::parse("alice 00").is_err());
        assert!(
            Tokens::parse("../x 0000000000000000000000000000000000000000000000000000000000000000")
                .is_err()
        );
        assert!(valid_id(&new_id().unwrap()));
        assert!(!valid_id("../../etc/passwd"));
    }
}
