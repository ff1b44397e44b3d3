//! Offline verification. `verdict export` writes a bundle — one account's log with raw
//! bodies, its newest signed checkpoint and the verifier key — and `verdict verify-bundle`
//! checks all of it with no database: every body and entry hash, the chain, the Merkle root
//! against the signed checkpoint. A record's `.tlog-proof` file is checked by
//! [`verify_proof_file`]. Both formats are specified in docs/log-format.md.

use std::io::{BufRead, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use super::entry::{DecodedEntry, GENESIS_PREV_HASH, Hash};
use super::merkle::{self, Frontier, ProofError};
use super::store::{self, StoredEntry};
use super::tree;
use super::verify::{Problem, check_entry};

/// First line of a bundle.
pub const BUNDLE_FORMAT: &str = "verdict-bundle/v1";
/// First line of a record proof (C2SP tlog-proof).
pub const PROOF_FORMAT: &str = "c2sp.org/tlog-proof@v1";

/// The bundle's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleHeader {
    pub format: String,
    pub account: String,
    /// The log's verifier key as the exporting server has it. Auditors should pass the key
    /// they trust to `verify-bundle --key` instead.
    pub verifier_key: String,
    /// The newest signed checkpoint (C2SP signed note).
    pub checkpoint: String,
    /// Entry lines that follow.
    pub entries: u64,
}

/// One entry line: every hashed field, the stored hashes and the raw body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleEntry {
    pub seq: u64,
    pub kind: String,
    /// RFC 3339, UTC, always six fractional digits (the hash counts microseconds).
    #[serde(with = "micros_rfc3339")]
    pub received_at: DateTime<Utc>,
    pub delivery_id: String,
    pub event: String,
    pub hook_id: Option<String>,
    pub installation_target_type: Option<String>,
    pub installation_target_id: Option<String>,
    pub signature: Option<String>,
    /// Hex.
    pub prev_hash: String,
    /// Hex.
    pub entry_hash: String,
    /// Hex.
    pub body_sha256: String,
    /// Base64 of the body exactly as received; `null` for a redacted entry (its
    /// `verdict-redaction` entry, later in the bundle, accounts for it).
    pub body: Option<String>,
}

impl BundleEntry {
    fn from_stored(e: &StoredEntry) -> BundleEntry {
        BundleEntry {
            seq: e.seq,
            kind: e.kind.clone(),
            received_at: e.received_at,
            delivery_id: e.delivery_id.clone(),
            event: e.event.clone(),
            hook_id: e.hook_id.clone(),
            installation_target_type: e.installation_target_type.clone(),
            installation_target_id: e.installation_target_id.clone(),
            signature: e.signature.clone(),
            prev_hash: hex::encode(&e.prev_hash),
            entry_hash: hex::encode(&e.entry_hash),
            body_sha256: hex::encode(&e.body_sha256),
            body: (!e.redacted).then(|| B64.encode(&e.body)),
        }
    }

    fn to_stored(&self) -> Option<StoredEntry> {
        Some(StoredEntry {
            seq: self.seq,
            kind: self.kind.clone(),
            prev_hash: hex::decode(&self.prev_hash).ok()?,
            entry_hash: hex::decode(&self.entry_hash).ok()?,
            received_at: self.received_at,
            delivery_id: self.delivery_id.clone(),
            event: self.event.clone(),
            hook_id: self.hook_id.clone(),
            installation_target_type: self.installation_target_type.clone(),
            installation_target_id: self.installation_target_id.clone(),
            signature: self.signature.clone(),
            body_sha256: hex::decode(&self.body_sha256).ok()?,
            body: match &self.body {
                Some(b) => B64.decode(b).ok()?,
                None => Vec::new(),
            },
            body_readable: true,
            redacted: self.body.is_none(),
            copy: None,
        })
    }
}

/// Why a bundle or proof does not verify (or could not be read).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {reason}")]
    Format { line: u64, reason: String },
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("entry {seq}: {problem}")]
    Entry { seq: u64, problem: String },
    #[error("the chain: {0}")]
    Chain(Problem),
    #[error(
        "the entries' Merkle root at size {size} is {computed}, but the signed checkpoint says {signed}: the entries are not the ones that were signed"
    )]
    RootMismatch {
        size: u64,
        computed: String,
        signed: String,
    },
    #[error(
        "the bundle has {entries} entries but its checkpoint covers {size}: entries are missing"
    )]
    TooShort { entries: u64, size: u64 },
    #[error("the inclusion proof does not verify: {0}")]
    Proof(#[from] ProofError),
    #[error(
        "the record is entry {seq} of log {log:?}, but the proof is for index {index} of {origin}"
    )]
    WrongRecord {
        seq: u64,
        log: String,
        index: u64,
        origin: String,
    },
    #[error(
        "the body's SHA-256 is {actual}, but the record says {recorded}: this is not the body that was logged"
    )]
    BodyMismatch { actual: String, recorded: String },
    #[error("export: {0}")]
    Database(#[from] sqlx::Error),
    #[error("export: no log named {0:?}")]
    UnknownLog(String),
    #[error(
        "export: log {0:?} has no signed checkpoint yet; start `verdict serve` once so it signs one"
    )]
    NoCheckpoint(String),
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub entries: u64,
    pub checkpoint_size: u64,
}

/// Writes an account's bundle.
pub async fn export(
    pool: &PgPool,
    account: &str,
    verifier_key: String,
    out: &mut impl Write,
) -> Result<ExportSummary, AuditError> {
    let head = store::heads(pool)
        .await?
        .into_iter()
        .find(|h| h.name == account)
        .ok_or_else(|| AuditError::UnknownLog(account.to_string()))?;
    let checkpoint = tree::latest_checkpoint(pool, account)
        .await?
        .ok_or_else(|| AuditError::NoCheckpoint(account.to_string()))?;
    let header = BundleHeader {
        format: BUNDLE_FORMAT.into(),
        account: account.into(),
        verifier_key,
        checkpoint: checkpoint.note,
        entries: head.size,
    };
    serde_json::to_writer(&mut *out, &header).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    let mut next = 0u64;
    while next < head.size {
        let page = store::entries_from(pool, head.log_id, next, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in page.iter().take_while(|e| e.seq < head.size) {
            serde_json::to_writer(&mut *out, &BundleEntry::from_stored(e))
                .map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            next = e.seq + 1;
        }
    }
    out.flush()?;
    Ok(ExportSummary {
        entries: next,
        checkpoint_size: checkpoint.tree_size,
    })
}

/// `received_at` in bundles: RFC 3339 in UTC with exactly six fractional digits, so every
/// entry line spells its time the same way (chrono's default drops trailing zero groups).
mod micros_rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// What a verified bundle proves.
#[derive(Debug, Clone)]
pub struct BundleReport {
    pub account: String,
    pub entries: u64,
    pub head_hash: Option<Hash>,
    pub checkpoint: Checkpoint,
    /// The key came from the bundle itself rather than from the auditor.
    pub key_from_bundle: bool,
    /// Entries carried without their body, each accounted for by a redaction entry.
    pub redacted: u64,
}

/// Checks a bundle completely. `key` is the verifier key the auditor trusts; without it the
/// bundle's own key is used (and the report says so).
pub fn verify_bundle(
    reader: impl BufRead,
    key: Option<&str>,
    mut progress: impl FnMut(u64, u64),
) -> Result<BundleReport, AuditError> {
    let mut lines = reader.lines();
    let first = lines.next().ok_or(AuditError::Format {
        line: 1,
        reason: "the file is empty".into(),
    })??;
    let header: BundleHeader = serde_json::from_str(&first).map_err(|e| AuditError::Format {
        line: 1,
        reason: format!("not a bundle header: {e}"),
    })?;
    if header.format != BUNDLE_FORMAT {
        return Err(AuditError::Format {
            line: 1,
            reason: format!("format {:?} is not {BUNDLE_FORMAT}", header.format),
        });
    }
    let trusted = NoteVerifier::parse(key.unwrap_or(&header.verifier_key))?;
    // Read now, checked at the end: the key that signed it may be one the trusted key handed
    // over to, through a rotation entry in the bundle.
    let checkpoint = Checkpoint::parse(
        header
            .checkpoint
            .rsplit_once("\n\n")
            .map(|(text, _)| text)
            .unwrap_or(&header.checkpoint),
    )?;
    let mut rotations = Vec::new();
    let mut frontier = Frontier::default();
    let mut prev = GENESIS_PREV_HASH;
    let mut count = 0u64;
    let mut root_checked = checkpoint.size == 0;
    let mut redactions = super::verify::Redactions::default();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let lineno = i as u64 + 2;
        let entry: BundleEntry = serde_json::from_str(&line).map_err(|e| AuditError::Format {
            line: lineno,
            reason: format!("not an entry: {e}"),
        })?;
        let stored = entry.to_stored().ok_or(AuditError::Format {
            line: lineno,
            reason: "a hash is not hex or the body is not base64".into(),
        })?;
        prev = check_entry(&header.account, count, &prev, &stored).map_err(AuditError::Chain)?;
        redactions.see(&stored);
        if stored.kind == super::entry::KIND_KEY_ROTATION
            && let Ok(r) = super::keys::open_rotation(&String::from_utf8_lossy(&stored.body))
        {
            rotations.push(r);
        }
        frontier.push(merkle::leaf_hash(&prev));
        count += 1;
        if count == checkpoint.size {
            let computed = frontier.root();
            if computed != checkpoint.root {
                return Err(AuditError::RootMismatch {
                    size: count,
                    computed: hex::encode(computed),
                    signed: hex::encode(checkpoint.root),
                });
            }
            root_checked = true;
        }
        progress(count, header.entries);
    }
    let redacted = redactions.finish().map_err(AuditError::Chain)?;
    if count != header.entries {
        return Err(AuditError::Format {
            line: count + 2,
            reason: format!(
                "the header announces {} entries but the bundle holds {count}: the file is cut short or padded; export it again",
                header.entries
            ),
        });
    }
    if !root_checked {
        return Err(AuditError::TooShort {
            entries: count,
            size: checkpoint.size,
        });
    }
    // The checkpoint is signed by the trusted key, or by a key it handed over to.
    let mut keys = vec![trusted.clone()];
    keys.extend(
        super::keys::follow(&trusted, &rotations)
            .1
            .into_iter()
            .map(|r| r.new.clone()),
    );
    let opened = keys
        .iter()
        .rev()
        .map(|k| k.open_checkpoint(&header.checkpoint))
        .find(Result::is_ok)
        .unwrap_or_else(|| trusted.open_checkpoint(&header.checkpoint))?;
    if opened != checkpoint {
        return Err(AuditError::Format {
            line: 1,
            reason: "the checkpoint's text changed between reading and checking".into(),
        });
    }
    Ok(BundleReport {
        account: header.account,
        entries: count,
        head_hash: (count > 0).then_some(prev),
        checkpoint,
        key_from_bundle: key.is_none(),
        redacted,
    })
}

/// What a verified record proof proves.
#[derive(Debug, Clone)]
pub struct ProofReport {
    pub entry: DecodedEntry,
    pub entry_hash: Hash,
    pub checkpoint: Checkpoint,
}

/// Checks a `.tlog-proof` file of one record against the verifier key the auditor trusts,
/// and (when given) that `body` is the body the record logged.
pub fn verify_proof_file(
    text: &str,
    key: &str,
    body: Option<&[u8]>,
) -> Result<ProofReport, AuditError> {
    verify_proof_file_following(text, key, &[], body)
}

/// Like [`verify_proof_file`], for a checkpoint signed by a key that `key` handed over to
/// through `rotations` (the log's key rotations, each signed by both keys).
pub fn verify_proof_file_following(
    text: &str,
    key: &str,
    rotations: &[super::keys::Rotation],
    body: Option<&[u8]>,
) -> Result<ProofReport, AuditError> {
    let bad = |line: u64, reason: &str| AuditError::Format {
        line,
        reason: reason.into(),
    };
    let mut lines = text.split('\n');
    if lines.next() != Some(PROOF_FORMAT) {
        return Err(bad(1, "not a c2sp.org/tlog-proof@v1 file"));
    }
    let mut line = lines.next().ok_or(bad(2, "truncated"))?;
    let mut lineno = 2;
    let extra = match line.strip_prefix("extra ") {
        Some(b) => {
            let e = B64.decode(b).map_err(|_| bad(2, "extra is not base64"))?;
            line = lines.next().ok_or(bad(3, "truncated"))?;
            lineno += 1;
            e
        }
        None => {
            return Err(bad(
                2,
                "no extra line: verdict's proofs carry the record there",
            ));
        }
    };
    let index: u64 = line
        .strip_prefix("index ")
        .and_then(|n| n.parse().ok())
        .ok_or(bad(lineno, "expected `index N`"))?;
    let mut hashes = Vec::new();
    loop {
        lineno += 1;
        let l = lines
            .next()
            .ok_or(bad(lineno, "no checkpoint after the proof"))?;
        if l.is_empty() {
            break;
        }
        hashes.push(
            B64.decode(l)
                .map_err(|_| bad(lineno, "a proof hash is not base64"))?,
        );
    }
    let note = lines.collect::<Vec<_>>().join("\n");
    let verifier = NoteVerifier::parse(key)?;
    let followed = super::keys::follow(&verifier, rotations).1;
    let checkpoint = followed
        .iter()
        .rev()
        .find_map(|r| r.new.open_checkpoint(&note).ok())
        .map_or_else(|| verifier.open_checkpoint(&note), Ok)?;
    let entry = DecodedEntry::decode(&extra).ok_or(bad(
        2,
        "extra is not a verdict entry encoding (docs/log-format.md)",
    ))?;
    let entry_hash: Hash = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        &extra,
    ))
    .into();
    if entry.seq != index || !checkpoint.origin.ends_with(&format!("/{}", entry.log_name)) {
        return Err(AuditError::WrongRecord {
            seq: entry.seq,
            log: entry.log_name,
            index,
            origin: checkpoint.origin,
        });
    }
    merkle::verify_inclusion(
        index,
        checkpoint.size,
        &merkle::leaf_hash(&entry_hash),
        &hashes,
        &checkpoint.root,
    )?;
    if let Some(body) = body {
        let actual = super::entry::body_hash(body);
        if actual != entry.body_sha256 {
            return Err(AuditError::BodyMismatch {
                actual: hex::encode(actual),
                recorded: hex::encode(entry.body_sha256),
            });
        }
    }
    Ok(ProofReport {
        entry,
        entry_hash,
        checkpoint,
    })
}
