//! GitHub signs every delivery body with HMAC-SHA256 under the webhook secret
//! (`X-Hub-Signature-256: sha256=<hex>`). Several secrets may be configured so a secret can be
//! rotated without dropping deliveries: any of them may verify.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The configured webhook secrets, in the order they are tried.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<Vec<u8>>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} configured)", self.0.len())
    }
}

/// Why a signature was refused; the text is what the sender is told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header: set a webhook secret on the GitHub App")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header: expected sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body under any configured webhook secret")]
    Mismatch,
}

impl WebhookSecrets {
    /// Secrets from a comma-separated list; empty items are ignored.
    pub fn from_list<S: AsRef<str>>(items: &[S]) -> Self {
        WebhookSecrets(
            items
                .iter()
                .flat_map(|s| s.as_ref().split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `header` (the raw `X-Hub-Signature-256` value) over `body` in constant time
    /// against every secret.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let expected = expected_digest(header)?;
        let mut check = self.check();
        check.update(body);
        check.finish(&expected).map(|_| ())
    }

    /// A check fed the body as it arrives, so the signature is known the moment the last byte
    /// is read and the body is hashed once.
    pub fn check(&self) -> BodyCheck {
        BodyCheck {
            macs: self
                .0
                .iter()
                .map(|secret| {
                    HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length")
                })
                .collect(),
            body: Sha256::new(),
        }
    }
}

/// The digest an `X-Hub-Signature-256` header claims, or why it claims none.
pub fn expected_digest(header: Option<&str>) -> Result<[u8; 32], SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
    Ok(expected)
}

/// A body's HMAC under every configured secret and its SHA-256, computed as it streams in.
pub struct BodyCheck {
    macs: Vec<HmacSha256>,
    body: Sha256,
}

impl BodyCheck {
    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
        self.body.update(chunk);
    }

    /// Whether any secret's HMAC equals `expected` (checked in constant time, every secret
    /// tried so timing does not tell which matched); on success, the body's SHA-256.
    pub fn finish(self, expected: &[u8; 32]) -> Result<crate::log::Hash, SignatureError> {
        let mut matched = false;
        for mac in self.macs {
            matched |= mac.verify_slice(expected).is_ok();
        }
        if matched {
            Ok(self.body.finalize().into())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// The `X-Hub-Signature-256` value GitHub would send for `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_documented_example_verifies() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let secrets = WebhookSecrets::from_list(&["It's a Secret to Everybody"]);
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secrets.verify(Some(header), b"Hello, World!"), Ok(()));
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            header
        );
    }

    #[test]
    fn any_rotated_secret_verifies_and_others_do_not() {
        let secrets = WebhookSecrets::from_list(&["old, new"]);
        assert_eq!(secrets.verify(Some(&sign(b"new", b"x")), b"x"), Ok(()));
        assert_eq!(secrets.verify(Some(&sign(b"old", b"x")), b"x"), Ok(()));
        assert_eq!(
            secrets.verify(Some(&sign(b"other", b"x")), b"x"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            secrets.verify(Some(&sign(b"new", b"x")), b"y"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        let secrets = WebhookSecrets::from_list(&["s"]);
        assert_eq!(secrets.verify(None, b"x"), Err(SignatureError::Missing));
        assert_eq!(
            secrets.verify(Some("sha1=00"), b"x"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            secrets.verify(Some("sha256=zz"), b"x"),
            Err(SignatureError::Malformed)
        );
    }
}
