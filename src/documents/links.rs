//! Signed, expiring document links.
//!
//! Guarantees: a link is an HMAC-SHA256 tag over (key id, document id, user id,
//! purpose, expiry) under a random 32-byte key; it verifies only for that document,
//! that user and that purpose, before its expiry, under the current or the previous
//! key, and the tag is compared in constant time. Rotation makes a new current key
//! and keeps exactly one previous key, so links issued just before a rotation keep
//! working until they expire and older keys stop working at the next rotation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

use crate::crypto::{self, CryptoError};

const DOMAIN: &[u8] = b"ihms-connect/document-link/v1";

/// One signing key as stored (sealed) in the store.
#[derive(Clone, Serialize, Deserialize)]
struct LinkKey {
    id: u32,
    /// Hex of 32 random bytes.
    secret: String,
}

impl Drop for LinkKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl LinkKey {
    fn generate(id: u32) -> Result<Self, CryptoError> {
        Ok(Self {
            id,
            secret: hex::encode(crypto::random_bytes::<32>()?),
        })
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct LinkKeys {
    current: LinkKey,
    previous: Option<LinkKey>,
}

/// What a link grants: one purpose on one document for one user until `expires_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub doc: Uuid,
    pub user: Uuid,
    pub purpose: &'static str,
    /// Unix seconds.
    pub expires_s: i64,
}

/// The signed part of a link, as carried in its query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LinkQuery {
    pub kid: Option<u32>,
    pub exp: Option<i64>,
    pub sig: Option<String>,
}

impl LinkQuery {
    /// Reads a link's query string leniently: a part that is missing, sent twice
    /// or not a number is left out, so every malformed link fails `verify` (and is
    /// answered and audited like any other bad link) instead of being refused
    /// earlier as a bad request.
    pub fn parse(raw: &str) -> Self {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
        let once = |name: &str| {
            let mut found = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
            match (found.next(), found.next()) {
                (Some(v), None) => Some(v.clone()),
                _ => None,
            }
        };
        Self {
            kid: once("kid").and_then(|v| v.parse().ok()),
            exp: once("exp").and_then(|v| v.parse().ok()),
            sig: once("sig"),
        }
    }
}

impl LinkKeys {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            current: LinkKey::generate(1)?,
            previous: None,
        })
    }

    /// A new current key; the current one becomes the previous one.
    pub fn rotated(&self) -> Result<Self, CryptoError> {
        Ok(Self {
            current: LinkKey::generate(self.current.id.wrapping_add(1))?,
            previous: Some(self.current.clone()),
        })
    }

    pub fn current_id(&self) -> u32 {
        self.current.id
    }

    fn key(&self, id: u32) -> Option<&LinkKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.id == id)
    }

    fn tag(key: &LinkKey, claim: &Claim) -> [u8; 32] {
        let secret = key.secret.as_bytes();
        crypto::hmac_sha256(
            secret,
            &[
                DOMAIN,
                b"\0",
                &key.id.to_be_bytes(),
                claim.doc.as_bytes(),
                claim.user.as_bytes(),
                claim.purpose.as_bytes(),
                b"\0",
                &claim.expires_s.to_be_bytes(),
            ],
        )
    }

    /// The query string (`kid=..&exp=..&sig=..`) of a link granting `claim`.
    pub fn sign(&self, claim: &Claim) -> String {
        let sig = URL_SAFE_NO_PAD.encode(Self::tag(&self.current, claim));
        format!("kid={}&exp={}&sig={sig}", self.current.id, claim.expires_s)
    }

    /// Whether `q` is an untampered link for `doc`, `user` and `purpose` that has not
    /// expired at `now_ms`.
    pub fn verify(
        &self,
        q: &LinkQuery,
        doc: Uuid,
        user: Uuid,
        purpose: &'static str,
        now_ms: i64,
    ) -> bool {
        let (Some(kid), Some(exp), Some(sig)) = (q.kid, q.exp, q.sig.as_deref()) else {
            return false;
        };
        let Some(key) = self.key(kid) else {
            return false;
        };
        let Ok(given) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        let claim = Claim {
            doc,
            user,
            purpose,
            expires_s: exp,
        };
        let genuine = crypto::ct_eq(&given, &Self::tag(key, &claim));
        genuine && now_ms < exp.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> LinkQuery {
        LinkQuery::parse(query)
    }

    #[test]
    fn a_malformed_query_leaves_the_bad_part_out() {
        let q = LinkQuery::parse("kid=1&exp=99999999999999999999&sig=a");
        assert_eq!((q.kid, q.exp, q.sig.as_deref()), (Some(1), None, Some("a")));
        let q = LinkQuery::parse("kid=abc&exp=5&sig=a&sig=b");
        assert_eq!((q.kid, q.exp, q.sig), (None, Some(5), None));
        let q = LinkQuery::parse("%zz=&&=");
        assert!(q.kid.is_none() && q.exp.is_none() && q.sig.is_none());
    }

    #[test]
    fn a_link_verifies_only_for_its_document_user_purpose_and_time() {
        let keys = LinkKeys::generate().unwrap();
        let (doc, user) = (Uuid::now_v7(), Uuid::now_v7());
        let claim = Claim {
            doc,
            user,
            purpose: "document.download",
            expires_s: 1_000,
        };
        let q = parse(&keys.sign(&claim));
        assert!(keys.verify(&q, doc, user, "document.download", 999_999));
        assert!(
            !keys.verify(&q, doc, user, "document.download", 1_000_000),
            "expired"
        );
        assert!(
            !keys.verify(&q, Uuid::now_v7(), user, "document.download", 0),
            "other doc"
        );
        assert!(
            !keys.verify(&q, doc, Uuid::now_v7(), "document.download", 0),
            "other user"
        );
        assert!(
            !keys.verify(&q, doc, user, "document.preview", 0),
            "other purpose"
        );
        let mut later = q.clone();
        later.exp = Some(2_000);
        assert!(
            !keys.verify(&later, doc, user, "document.download", 0),
            "edited expiry"
        );
        assert!(!keys.verify(&LinkQuery::default(), doc, user, "document.download", 0));
    }

    #[test]
    fn rotation_keeps_one_previous_key() {
        let first = LinkKeys::generate().unwrap();
        let (doc, user) = (Uuid::now_v7(), Uuid::now_v7());
        let claim = Claim {
            doc,
            user,
            purpose: "p",
            expires_s: 10,
        };
        let q = parse(&first.sign(&claim));
        let second = first.rotated().unwrap();
        assert!(
            second.verify(&q, doc, user, "p", 0),
            "previous key accepted"
        );
        let third = second.rotated().unwrap();
        assert!(!third.verify(&q, doc, user, "p", 0), "older keys retired");
        assert_eq!(third.current_id(), 3);
    }
}
