//! API keys (and, later, session tokens): random secrets with a readable prefix, kept only as a
//! SHA-256 hash. A fast hash is right here, unlike for passwords: the secret carries 256 bits of
//! randomness, so there is nothing to brute-force, and every request has to look one up.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::ids::{ApiKeyId, OrganizationId};

/// Prefix of every API key: lets people and secret scanners recognise one.
pub const API_KEY_PREFIX: &str = "obk_";
/// How much of a key is kept readable (prefix included) to tell keys apart in lists.
const SHOWN_PREFIX_LEN: usize = 12;

/// What a key may act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// The operator: everything, including `/api/admin/…`.
    Platform,
    /// A reseller: its partner organization and that partner's children.
    Partner,
    /// One organization, within the key's roles.
    Organization,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Platform => "platform",
            KeyKind::Partner => "partner",
            KeyKind::Organization => "organization",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "platform" => Some(Self::Platform),
            "partner" => Some(Self::Partner),
            "organization" => Some(Self::Organization),
            _ => None,
        }
    }
}

/// The SHA-256 of a secret, hex-encoded: what storage keeps and looks up by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretHash(String);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        // On every request made with a key: hex into a buffer, not `hex::encode`, which
        // collects one char at a time (some 2,900 instructions, more than a SHA-256 of a key
        // takes with the CPU's SHA extensions).
        let mut hex = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut hex)
            .expect("a SHA-256 is 32 bytes, 64 in hex");
        Self(String::from_utf8(hex.to_vec()).expect("hex is ASCII"))
    }
    /// Wraps a hash read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A secret just made: the plain text is shown to its owner once, then only the hash remains.
pub struct NewSecret {
    pub plain: String,
    pub hash: SecretHash,
    pub prefix: String,
}

impl NewSecret {
    /// A new random secret: `prefix` followed by 256 random bits, base64url.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let plain = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
        Self::from_generated(plain)
    }

    /// A secret the operator chose (the bootstrap key). Its readable prefix comes from the hash,
    /// not from the secret: an operator's string has no public part to show.
    pub fn from_plain(plain: String) -> Self {
        let hash = SecretHash::of(&plain);
        let prefix = format!("boot_{}", &hash.as_str()[..6]);
        Self {
            plain,
            hash,
            prefix,
        }
    }

    fn from_generated(plain: String) -> Self {
        let hash = SecretHash::of(&plain);
        let prefix = plain.chars().take(SHOWN_PREFIX_LEN).collect();
        Self {
            plain,
            hash,
            prefix,
        }
    }
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSecret")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A stored API key. The secret itself is never held here, only its hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub kind: KeyKind,
    pub organization_id: Option<OrganizationId>,
    /// Role ids the key acts with (organization keys; empty otherwise).
    pub roles: Vec<i64>,
    pub prefix: String,
    pub hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// A new platform key for `secret` (only its hash and prefix are kept).
    pub fn new_platform(name: String, secret: &NewSecret) -> Self {
        Self {
            id: ApiKeyId::new(),
            name,
            kind: KeyKind::Platform,
            organization_id: None,
            roles: Vec::new(),
            prefix: secret.prefix.clone(),
            hash: secret.hash.clone(),
            created_at: crate::now(),
            revoked_at: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A key name: at most 100 characters as sent, at least one after trimming, no control
/// characters.
pub fn parse_key_name(field: &str, raw: &str) -> Result<String, crate::FieldError> {
    let name = crate::validation::trim_pattern_space(raw);
    if name.is_empty() {
        return Err(crate::FieldError::new(
            field,
            "required",
            "must not be empty",
        ));
    }
    if raw.chars().count() > 100 {
        return Err(crate::FieldError::new(
            field,
            "too_long",
            "must be at most 100 characters",
        ));
    }
    if crate::validation::has_control(name) {
        return Err(crate::FieldError::new(
            field,
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_long_and_distinct() {
        let a = NewSecret::generate(API_KEY_PREFIX);
        let b = NewSecret::generate(API_KEY_PREFIX);
        assert!(a.plain.starts_with("obk_"));
        // 32 bytes base64url without padding is 43 characters.
        assert_eq!(a.plain.len(), 4 + 43);
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.prefix, a.plain[..12]);
        assert_eq!(a.hash, SecretHash::of(&a.plain));
        assert_eq!(a.hash.as_str().len(), 64);
    }

    /// Keys are looked up by this string: stored hashes must keep matching (FIPS 180-2's "abc").
    #[test]
    fn the_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            SecretHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_operator_key_shows_nothing_of_itself() {
        let k = NewSecret::from_plain("my-very-own-bootstrap-key-of-32-chars".into());
        assert!(k.prefix.starts_with("boot_") && !k.prefix.contains("my-very"));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let a = NewSecret::generate(API_KEY_PREFIX);
        assert!(!format!("{a:?}").contains(&a.plain));
        assert!(!format!("{:?}", a.hash).contains(a.hash.as_str()));
    }
}
