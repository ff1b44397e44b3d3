//! Signed checkpoints: C2SP tlog-checkpoint bodies inside C2SP signed notes, signed with
//! Ed25519, so existing tools (golang.org/x/mod/sumdb/note, witnesses) can check verdict's
//! logs. One Ed25519 key signs every log; each log's key name is its origin,
//! `<key file name>/<account>`, so each log has its own verifier key string.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::entry::Hash;

/// Signature type byte of Ed25519 in C2SP signed notes.
const ALG_ED25519: u8 = 0x01;
/// Prefixes a signature line.
const SIG_PREFIX: &str = "— ";

/// Problems with keys, notes and checkpoints; each says what is wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error(
        "malformed signing key: {0} (expected PRIVATE+KEY+<name>+<hex id>+<base64>, as `verdict keygen` writes)"
    )]
    SigningKey(&'static str),
    #[error("malformed verifier key: {0} (expected <name>+<hex id>+<base64>)")]
    VerifierKey(&'static str),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("the note has no signature by {0}")]
    NotSigned(String),
    #[error("the signature by {0} does not verify: the note was changed or signed by another key")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
    #[error("the checkpoint is for log {found:?}, not {expected:?}")]
    WrongOrigin { expected: String, found: String },
}

/// The C2SP key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let d = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public)
        .finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key that signs checkpoints, with the name logs' origins start with.
#[derive(Clone)]
pub struct CheckpointSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner({})", self.name)
    }
}

impl CheckpointSigner {
    /// A new random key. `name` should be the schema-less URL of this verdict
    /// (`verdict.example.com`).
    pub fn generate(name: &str) -> Result<CheckpointSigner, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::SigningKey(
                "the name is empty or has spaces or '+'",
            ));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system provides randomness");
        Ok(CheckpointSigner {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads the golang.org/x/mod/sumdb/note signer key format.
    pub fn parse(text: &str) -> Result<CheckpointSigner, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::SigningKey("it does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (name, id, data) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(i), Some(d)) => (n, i, d),
            _ => return Err(NoteError::SigningKey("it has fewer than five parts")),
        };
        if !valid_name(name) {
            return Err(NoteError::SigningKey("bad name"));
        }
        let data = B64
            .decode(data)
            .map_err(|_| NoteError::SigningKey("the key data is not base64"))?;
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(NoteError::SigningKey("the key data is not an Ed25519 seed"));
        }
        let key = SigningKey::from_bytes(data[1..].try_into().unwrap());
        let id = u32::from_str_radix(id, 16).map_err(|_| NoteError::SigningKey("bad key id"))?;
        if id != key_id(name, &key.verifying_key().to_bytes()) {
            return Err(NoteError::SigningKey("the key id does not match the key"));
        }
        Ok(CheckpointSigner {
            name: name.to_string(),
            key,
        })
    }

    /// The signer key text (keep it secret).
    pub fn to_key_text(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            key_id(&self.name, &self.key.verifying_key().to_bytes()),
            B64.encode(data)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The origin (and key name) of an account's log.
    pub fn origin(&self, account: &str) -> String {
        format!("{}/{account}", self.name)
    }

    /// The verifier key of an account's log, `<origin>+<hex id>+<base64>`.
    pub fn verifier_key(&self, account: &str) -> String {
        verifier_key_text(&self.origin(account), &self.key.verifying_key())
    }

    /// The verifier key for this signer's own name (as `verdict keygen` prints it).
    pub fn own_verifier_key(&self) -> String {
        verifier_key_text(&self.name, &self.key.verifying_key())
    }

    /// Signs `text` as a note under `key_name`.
    pub fn sign_note(&self, key_name: &str, text: &str) -> String {
        sign_note(&self.key, key_name, text)
    }

    /// `text` signed by every one of `signers` (each under its key name): one note, one
    /// signature line per key, in order.
    pub fn cosign(text: &str, signers: &[(&CheckpointSigner, &str)]) -> String {
        let mut note = format!("{text}\n");
        for (signer, key_name) in signers {
            let signed = signer.sign_note(key_name, text);
            note.push_str(&signed[text.len() + 1..]);
        }
        note
    }

    /// A signed checkpoint of an account's log.
    pub fn sign_checkpoint(&self, account: &str, size: u64, root: &Hash) -> String {
        let origin = self.origin(account);
        let body = Checkpoint {
            origin: origin.clone(),
            size,
            root: *root,
        }
        .body();
        self.sign_note(&origin, &body)
    }
}

fn verifier_key_text(name: &str, key: &VerifyingKey) -> String {
    let public = key.to_bytes();
    let mut data = vec![ALG_ED25519];
    data.extend_from_slice(&public);
    format!("{name}+{:08x}+{}", key_id(name, &public), B64.encode(data))
}

fn sign_note(key: &SigningKey, key_name: &str, text: &str) -> String {
    let sig: Signature = key.sign(text.as_bytes());
    let mut blob = key_id(key_name, &key.verifying_key().to_bytes())
        .to_be_bytes()
        .to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{text}\n{SIG_PREFIX}{key_name} {}\n", B64.encode(blob))
}

/// A public key that checks notes: parsed from `<name>+<hex id>+<base64>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    pub name: String,
    pub id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (name, id, data) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(i), Some(d)) => (n, i, d),
            _ => return Err(NoteError::VerifierKey("it has fewer than three parts")),
        };
        if !valid_name(name) {
            return Err(NoteError::VerifierKey("bad name"));
        }
        let id = u32::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 8)
            .ok_or(NoteError::VerifierKey("the key id is not 8 hex digits"))?;
        let data = B64
            .decode(data)
            .map_err(|_| NoteError::VerifierKey("the key data is not base64"))?;
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(NoteError::VerifierKey("not an Ed25519 key"));
        }
        let public: [u8; 32] = data[1..].try_into().unwrap();
        if key_id(name, &public) != id {
            return Err(NoteError::VerifierKey("the key id does not match the key"));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::VerifierKey("not a valid Ed25519 point"))?;
        Ok(NoteVerifier {
            name: name.to_string(),
            id,
            key,
        })
    }

    /// Checks a signed note and returns its text. Signatures by other keys are ignored; a
    /// signature by this key that fails rejects the note.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("it contains control characters"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "the last signature line does not end in a newline",
            ));
        }
        let mut verified = false;
        for line in sigs.lines() {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "a signature line does not start with \"— \"",
            ))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line has no signature"))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if blob.len() < 4 {
                return Err(NoteError::Malformed("a signature is too short"));
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if name != self.name || id != self.id {
                continue;
            }
            let sig = Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key
                .verify(text.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::NotSigned(self.name.clone()))
        }
    }

    /// Checks a signed checkpoint of this key's log.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let checkpoint = Checkpoint::parse(self.open(note)?)?;
        if checkpoint.origin != self.name {
            return Err(NoteError::WrongOrigin {
                expected: self.name.clone(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

/// A C2SP tlog-checkpoint body: origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(NoteError::Checkpoint("no origin line"))?;
        let size = lines
            .next()
            .filter(|l| l == &"0" || (!l.starts_with('0') && l.chars().all(|c| c.is_ascii_digit())))
            .and_then(|l| l.parse().ok())
            .ok_or(NoteError::Checkpoint(
                "the size line is not a decimal number",
            ))?;
        let root = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
            .ok_or(NoteError::Checkpoint(
                "the root line is not a base64 SHA-256 hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// Splits the checkpoint out of a signed note without checking it (to learn its origin).
pub fn peek_origin(note: &str) -> Option<&str> {
    note.lines().next().filter(|l| !l.is_empty())
}

/// Who signed a note, unchecked, for messages: `<key name>+<hex id>` of each signature line.
pub fn peek_signer(note: &str) -> Option<String> {
    let (_, sigs) = note.rsplit_once("\n\n")?;
    let names: Vec<String> = sigs
        .lines()
        .filter_map(|l| {
            let (name, blob) = l.strip_prefix(SIG_PREFIX)?.split_once(' ')?;
            let blob = B64.decode(blob).ok()?;
            let id = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?);
            Some(format!("{name}+{id:08x}"))
        })
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note of golang.org/x/mod/sumdb/note (the reference
    // implementation): signing must reproduce its note byte for byte.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn matches_the_reference_implementation_byte_for_byte() {
        let signer = CheckpointSigner::parse(GO_SKEY).unwrap();
        assert_eq!(signer.to_key_text(), GO_SKEY);
        assert_eq!(signer.own_verifier_key(), GO_VKEY);
        assert_eq!(signer.sign_note("PeterNeumann", GO_TEXT), GO_NOTE);
        let verifier = NoteVerifier::parse(GO_VKEY).unwrap();
        assert_eq!(verifier.open(GO_NOTE).unwrap(), GO_TEXT);
    }

    #[test]
    fn verifies_the_c2sp_specification_example() {
        let v = NoteVerifier::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(v.open(note).unwrap(), "This is an example message.\n");
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_tampering() {
        let signer = CheckpointSigner::generate("verdict.example.com").unwrap();
        let again = CheckpointSigner::parse(&signer.to_key_text()).unwrap();
        assert_eq!(again.verifier_key("acme"), signer.verifier_key("acme"));
        let note = signer.sign_checkpoint("acme", 42, &[7u8; 32]);
        assert!(note.starts_with("verdict.example.com/acme\n42\nBwcH"));
        let v = NoteVerifier::parse(&signer.verifier_key("acme")).unwrap();
        let cp = v.open_checkpoint(&note).unwrap();
        assert_eq!((cp.size, cp.root), (42, [7u8; 32]));

        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            v.open_checkpoint(&tampered),
            Err(NoteError::BadSignature(_))
        ));
        let other = NoteVerifier::parse(&signer.verifier_key("other")).unwrap();
        assert!(matches!(
            other.open_checkpoint(&note),
            Err(NoteError::NotSigned(_))
        ));
        let stranger = CheckpointSigner::generate("verdict.example.com").unwrap();
        let forged = stranger.sign_checkpoint("acme", 42, &[7u8; 32]);
        assert!(v.open_checkpoint(&forged).is_err(), "same name, other key");
    }
}

/// Problems reading or writing a signing key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "cannot read the signing key {path}: {source}. Create one with `verdict keygen --out {path}`"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the signing key {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: String, source: NoteError },
    #[error(
        "{path} already exists; refusing to overwrite a signing key (delete it first if you mean it)"
    )]
    Exists { path: String },
}

/// Default key name for generated keys; set a real one with `verdict keygen --name`.
pub const DEFAULT_KEY_NAME: &str = "verdict.local";

/// Reads a signer key file written by [`write_key_file`] / `verdict keygen`.
pub fn read_key_file(path: &std::path::Path) -> Result<CheckpointSigner, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    CheckpointSigner::parse(&text).map_err(|source| KeyFileError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// Writes a new key file readable by its owner only; never overwrites one.
pub fn write_key_file(
    path: &std::path::Path,
    signer: &CheckpointSigner,
) -> Result<(), KeyFileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyFileError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                err(source)
            }
        })?;
    writeln!(file, "{}", signer.to_key_text()).map_err(err)
}

/// The key at `path`, or (without one) the key kept in `data_dir`, generated on first use.
/// Returns whether it was generated now.
pub fn load_or_generate(
    path: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> Result<(CheckpointSigner, std::path::PathBuf, bool), KeyFileError> {
    if let Some(path) = path {
        return Ok((read_key_file(path)?, path.to_path_buf(), false));
    }
    let path = data_dir.join("checkpoint-signing.key");
    if path.exists() {
        return Ok((read_key_file(&path)?, path, false));
    }
    // Several processes may start at once on one data directory: write a private temporary
    // file, then link it into place, which succeeds for exactly one of them.
    let signer = CheckpointSigner::generate(DEFAULT_KEY_NAME).expect("the default name is valid");
    let tmp = data_dir.join(format!(".checkpoint-signing.key.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_key_file(&tmp, &signer)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((signer, path, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((read_key_file(&path)?, path, false))
        }
        Err(source) => Err(KeyFileError::Write {
            path: path.display().to_string(),
            source,
        }),
    }
}
