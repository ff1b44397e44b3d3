//! Key continuity. The key that signs a log's checkpoints changes only through a
//! `verdict-key-rotation` entry in that log: a note, signed by the old key and by the new one,
//! that names both and the checkpoint (size and root) the new key takes over from. Whoever
//! trusts the old key follows the chain to the new one; `serve` refuses a key that no chain
//! leads to from the key of the newest checkpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::PgExecutor;

use super::checkpoint::{CheckpointSigner, NoteError, NoteVerifier};
use super::entry::{Hash, KIND_KEY_ROTATION};

/// The first line of a rotation note.
const HEADER: &str = "verdict key rotation";

/// A checked key rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub old: NoteVerifier,
    pub new: NoteVerifier,
    /// The checkpoint the new key takes over from (signed by the old key).
    pub size: u64,
    pub root: Hash,
    /// The note as stored.
    pub note: String,
}

/// The text both keys sign.
pub fn rotation_text(old_key: &str, new_key: &str, size: u64, root: &Hash) -> String {
    format!(
        "{HEADER}\nold {old_key}\nnew {new_key}\n{size}\n{}\n",
        B64.encode(root)
    )
}

/// The rotation of `account`'s log from `old` to `new` at its checkpoint (`size`, `root`).
pub fn sign_rotation(
    old: &CheckpointSigner,
    new: &CheckpointSigner,
    account: &str,
    size: u64,
    root: &Hash,
) -> String {
    let text = rotation_text(
        &old.verifier_key(account),
        &new.verifier_key(account),
        size,
        root,
    );
    CheckpointSigner::cosign(
        &text,
        &[(old, &old.origin(account)), (new, &new.origin(account))],
    )
}

/// Reads a rotation note and checks both signatures.
pub fn open_rotation(note: &str) -> Result<Rotation, NoteError> {
    let text = note
        .split_once("\n\n")
        .map(|(text, _)| text)
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(NoteError::Malformed("not a verdict key rotation"));
    }
    let mut key = |prefix: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(prefix))
            .ok_or(NoteError::Malformed(
                "a rotation names an old and a new key",
            ))
            .and_then(NoteVerifier::parse)
    };
    let (old, new) = (key("old ")?, key("new ")?);
    let size = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or(NoteError::Malformed(
            "a rotation names the checkpoint's size",
        ))?;
    let root = lines
        .next()
        .and_then(|l| B64.decode(l).ok())
        .and_then(|r| Hash::try_from(r).ok())
        .ok_or(NoteError::Malformed(
            "a rotation names the checkpoint's root",
        ))?;
    old.open(note)?;
    new.open(note)?;
    Ok(Rotation {
        old,
        new,
        size,
        root,
        note: note.to_string(),
    })
}

/// The key a verifier trusting `trusted` trusts after following `rotations` (in log order),
/// and the rotations it followed.
pub fn follow<'a>(
    trusted: &NoteVerifier,
    rotations: &'a [Rotation],
) -> (NoteVerifier, Vec<&'a Rotation>) {
    let mut key = trusted.clone();
    let mut followed = Vec::new();
    for r in rotations {
        if r.old == key {
            key = r.new.clone();
            followed.push(r);
        }
    }
    (key, followed)
}

/// Every key rotation of a log, checked, in log order. A stored rotation that does not check
/// out is skipped (nothing follows it).
pub async fn stored(conn: impl PgExecutor<'_>, log_id: i64) -> sqlx::Result<Vec<Rotation>> {
    let notes: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body FROM log_entries WHERE log_id = $1 AND kind = $2 ORDER BY seq",
    )
    .bind(log_id)
    .bind(KIND_KEY_ROTATION)
    .fetch_all(conn)
    .await?;
    Ok(notes
        .iter()
        .filter_map(|n| open_rotation(&String::from_utf8_lossy(n)).ok())
        .collect())
}

/// Every key rotation note of a log, concatenated (as `/api/logs/ACCOUNT/key-rotations` serves
/// them, and `verify-proof --rotations` reads them).
pub fn concatenated(rotations: &[Rotation]) -> String {
    rotations
        .iter()
        .map(|r| r.note.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits concatenated rotation notes (blank-line separated) back into checked rotations.
pub fn parse_concatenated(text: &str) -> Result<Vec<Rotation>, NoteError> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if line == HEADER || line == format!("{HEADER}\n") {
            if !current.trim().is_empty() {
                out.push(open_rotation(&format!("{}\n", current.trim()))?);
            }
            current.clear();
        }
        current.push_str(line);
    }
    if !current.trim().is_empty() {
        out.push(open_rotation(&format!("{}\n", current.trim()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_is_signed_by_both_keys_and_followed_in_order() {
        let a = CheckpointSigner::generate("verdict.example").unwrap();
        let b = CheckpointSigner::generate("verdict.example").unwrap();
        let c = CheckpointSigner::generate("verdict.example").unwrap();
        let ab = open_rotation(&sign_rotation(&a, &b, "acme", 8, &[1; 32])).unwrap();
        let bc = open_rotation(&sign_rotation(&b, &c, "acme", 12, &[2; 32])).unwrap();
        assert_eq!((ab.size, ab.root), (8, [1; 32]));
        let key = |s: &CheckpointSigner| NoteVerifier::parse(&s.verifier_key("acme")).unwrap();
        let both = [ab.clone(), bc.clone()];
        let (now, followed) = follow(&key(&a), &both);
        assert_eq!(now, key(&c));
        assert_eq!(followed.len(), 2);
        // From b only the second one applies; from c none.
        assert_eq!(follow(&key(&b), &both).0, key(&c));
        assert_eq!(follow(&key(&c), &both).1.len(), 0);
        // Both notes survive concatenation.
        let text = concatenated(&[ab.clone(), bc.clone()]);
        assert_eq!(parse_concatenated(&text).unwrap(), vec![ab, bc]);
    }

    #[test]
    fn a_rotation_signed_by_one_key_only_is_refused() {
        let a = CheckpointSigner::generate("verdict.example").unwrap();
        let b = CheckpointSigner::generate("verdict.example").unwrap();
        let mallory = CheckpointSigner::generate("verdict.example").unwrap();
        let text = rotation_text(
            &a.verifier_key("acme"),
            &b.verifier_key("acme"),
            8,
            &[0; 32],
        );
        // Signed by the new key and someone else, not by the old key.
        let note = CheckpointSigner::cosign(
            &text,
            &[(&mallory, &a.origin("acme")), (&b, &b.origin("acme"))],
        );
        assert!(open_rotation(&note).is_err());
        let only_new = b.sign_note(&b.origin("acme"), &text);
        assert!(open_rotation(&only_new).is_err());
    }
}

/// Why `serve` will not sign with its key.
#[derive(Debug, thiserror::Error)]
pub enum ContinuityError {
    #[error(
        "log {log}'s newest checkpoint ({size}) was signed by another key ({signed_by}), not this \
         server's ({ours}). Start with the key that signed it (--signing-key / \
         VERDICT_SIGNING_KEY_FILE), or hand over to this key with --rotate-key OLD_KEY_FILE, \
         which records the rotation in the log signed by both keys"
    )]
    KeyMismatch {
        log: String,
        size: u64,
        signed_by: String,
        ours: String,
    },
    #[error(
        "the key given with --rotate-key did not sign log {log}'s newest checkpoint ({size}) \
         either: give the key that did"
    )]
    WrongOldKey { log: String, size: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("could not record the key rotation: {0}")]
    Append(#[from] super::sequencer::AppendError),
}

/// The keys whose signature on a log's newest checkpoint `signer` accepts as its own: its
/// own, and any key a stored rotation leads from to it (the rotation's checkpoint only).
pub fn accepts(
    signer: &CheckpointSigner,
    account: &str,
    rotations: &[Rotation],
    note: &str,
    size: u64,
    root: &Hash,
) -> bool {
    let Ok(ours) = NoteVerifier::parse(&signer.verifier_key(account)) else {
        return false;
    };
    let signs = |key: &NoteVerifier| {
        key.open_checkpoint(note)
            .is_ok_and(|c| c.size == size && c.root == *root)
    };
    signs(&ours)
        || rotations.iter().any(|r| {
            r.size == size
                && r.root == *root
                && follow(&r.old, rotations).0 == ours
                && signs(&r.old)
        })
}

/// Checks, before `serve` signs anything, that its key continues every log's checkpoints;
/// with `rotate_from` (the old key), records the handover in each log the old key signed.
/// Returns the logs rotated.
pub async fn ensure_continuity(
    pool: &sqlx::PgPool,
    signer: &CheckpointSigner,
    rotate_from: Option<&CheckpointSigner>,
    sequencer: &super::Sequencer,
) -> Result<Vec<String>, ContinuityError> {
    let newest: Vec<(i64, String, i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (c.log_id) c.log_id, l.name, c.tree_size, c.root_hash, c.note
           FROM checkpoints c JOIN logs l ON l.id = c.log_id
          ORDER BY c.log_id, c.tree_size DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut rotated = Vec::new();
    for (log_id, name, size, root, note) in newest {
        let (size, root) = (size as u64, Hash::try_from(root).unwrap_or([0; 32]));
        let rotations = stored(pool, log_id).await?;
        if accepts(signer, &name, &rotations, &note, size, &root) {
            continue;
        }
        let Some(old) = rotate_from else {
            return Err(ContinuityError::KeyMismatch {
                signed_by: super::checkpoint::peek_signer(&note).unwrap_or("an unknown key".into()),
                ours: signer.verifier_key(&name),
                log: name,
                size,
            });
        };
        if !accepts(old, &name, &rotations, &note, size, &root) {
            return Err(ContinuityError::WrongOldKey { log: name, size });
        }
        let body = sign_rotation(old, signer, &name, size, &root).into_bytes();
        let new_key = NoteVerifier::parse(&signer.verifier_key(&name))
            .map(|k| format!("{:08x}", k.id))
            .unwrap_or_default();
        sequencer
            .append(super::store::NewEntry {
                log_name: name.clone(),
                kind: KIND_KEY_ROTATION.into(),
                received_at: micros(chrono::Utc::now()),
                delivery_id: format!("key-rotation:{name}:{size}:{new_key}"),
                event: "key-rotation".into(),
                hook_id: None,
                installation_target_type: None,
                installation_target_id: None,
                signature: None,
                body_sha256: super::entry::body_hash(&body),
                body: bytes::Bytes::from(body),
                body_readable: true,
            })
            .await?;
        tracing::warn!(log = %name, size, "checkpoint signing key rotated; the handover is in the log");
        rotated.push(name);
    }
    Ok(rotated)
}

fn micros(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
