//! Recomputes a log from its stored bytes: every body hash, every entry hash, every link, the
//! sequence; the Merkle root of every size a stored checkpoint signed (so a truncated or
//! rewritten log fails whenever a checkpoint covered it), the newest checkpoint's signature
//! when the server's key is given; and optionally that the log still extends a head printed
//! earlier (which catches what happened where no checkpoint reached).

use sqlx::{PgPool, Row};

use super::checkpoint::NoteVerifier;
use super::entry::{GENESIS_PREV_HASH, Hash, body_hash};
use super::merkle::{self, Frontier};
use super::store::{self, StoredEntry};

/// Rows fetched per round trip while walking a log.
const PAGE: i64 = 500;

/// A head printed by an earlier `verify`: the log must still contain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedHead {
    pub size: u64,
    pub hash: Hash,
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;
    /// `SIZE:HEX`, as `verify` prints it.
    fn from_str(s: &str) -> Result<Self, String> {
        let (size, hash) = s
            .split_once(':')
            .ok_or("expected SIZE:HASH, e.g. 42:9f86d0…, as printed by `verdict verify`")?;
        let size = size.parse().map_err(|_| format!("bad size {size:?}"))?;
        let hash = super::entry::parse_hash(hash).ok_or("the hash must be 64 hex digits")?;
        Ok(ExpectedHead { size, hash })
    }
}

/// What a log is checked against besides itself.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// A head printed by an earlier run.
    pub head: Option<ExpectedHead>,
    /// The verifier key of the log (`<origin>+<id>+<key>`): the newest stored checkpoint must
    /// be signed by it.
    pub key: Option<NoteVerifier>,
}

impl From<Option<ExpectedHead>> for Check {
    fn from(head: Option<ExpectedHead>) -> Check {
        Check { head, key: None }
    }
}

/// A verified log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHead {
    pub log_name: String,
    pub size: u64,
    /// `None` for an empty log.
    pub head_hash: Option<Hash>,
    /// Stored checkpoints whose root was recomputed from the entries and matched.
    pub checkpoints: u64,
    /// The size of the newest checkpoint, when its signature was checked with the given key.
    pub signed: Option<u64>,
    /// Entries whose body was erased by a recorded redaction (body hash kept).
    pub redacted: u64,
}

impl std::fmt::Display for VerifiedHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.head_hash {
            Some(h) => write!(
                f,
                "log {} size {} head {}:{}",
                self.log_name,
                self.size,
                self.size,
                hex::encode(h)
            ),
            None => write!(f, "log {} size 0 (empty)", self.log_name),
        }?;
        if self.checkpoints > 0 {
            write!(
                f,
                "; {} stored checkpoint{} match the entries' Merkle roots",
                self.checkpoints,
                if self.checkpoints == 1 { "" } else { "s" }
            )?;
        }
        if let Some(size) = self.signed {
            write!(f, "; the newest ({size}) is signed by the given key")?;
        }
        if self.redacted > 0 {
            write!(
                f,
                "; {} entr{} redacted (body hash kept)",
                self.redacted,
                if self.redacted == 1 { "y" } else { "ies" }
            )?;
        }
        Ok(())
    }
}

/// The first thing found wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("entry {seq}: the body does not match its stored SHA-256 (body changed)")]
    BodyHash { seq: u64 },
    #[error(
        "entry {seq}: the body is missing and no redaction entry in the log accounts for it (body removed)"
    )]
    BodyMissing { seq: u64 },
    #[error(
        "entry {seq}: the redacted copy kept in place of its body is not the one its latest redaction entry records (copy changed)"
    )]
    CopyMismatch { seq: u64 },
    #[error("entry {seq}: the stored entry hash is not the hash of its fields (entry changed)")]
    EntryHash { seq: u64 },
    #[error("entry {seq}: prev_hash does not equal the hash of entry {prev} (chain broken)", prev = seq.wrapping_sub(1))]
    PrevHash { seq: u64 },
    #[error("entry {expected} is missing: the next stored entry is {found} (entries deleted)")]
    Gap { expected: u64, found: u64 },
    #[error("the log has {size} entries but an earlier head had {expected} (log truncated)")]
    Truncated { size: u64, expected: u64 },
    #[error("entry {seq} hashes to {actual}, not the earlier head {expected} (history rewritten)")]
    HeadMismatch {
        seq: u64,
        actual: String,
        expected: String,
    },
    #[error(
        "checkpoint {size} signed a Merkle root the first {size} entries no longer give (history rewritten)"
    )]
    CheckpointRoot { size: u64 },
    #[error("a stored checkpoint signed {size} entries but the log has {log_size} (log truncated)")]
    CheckpointBeyondLog { size: u64, log_size: u64 },
    #[error(
        "the newest checkpoint ({size}) is not signed by the given key over its stored root: {reason}"
    )]
    CheckpointSignature { size: u64, reason: String },
}

/// Failure to verify: the log is bad, or it could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("log {log}: {problem}")]
    Bad { log: String, problem: Problem },
    #[error("no log named {0:?}; `verdict verify` without --log lists what exists")]
    UnknownLog(String),
    #[error("could not read the log: {0}")]
    Database(#[from] sqlx::Error),
}

/// Bodies missing from a log, and the redaction entries that account for them: a body may be
/// missing only where a `verdict-redaction` entry later in the same log names the entry and
/// the body's SHA-256 (docs/log-format.md, "Redaction entries").
#[derive(Debug, Default)]
pub struct Redactions {
    /// Entries without a body: seq → body SHA-256.
    missing: std::collections::BTreeMap<u64, Vec<u8>>,
    /// What redaction entries name: (target seq, target body SHA-256).
    named: std::collections::BTreeSet<(u64, Vec<u8>)>,
    /// Whether the copies kept in erased bodies' places are checked (they are in the
    /// database, not in bundles).
    check_copies: bool,
    /// The SHA-256 of each erased entry's stored copy, if it has one.
    copies: std::collections::BTreeMap<u64, Option<Vec<u8>>>,
    /// The copy the latest redaction entry naming each entry records, if any.
    recorded_copies: std::collections::BTreeMap<u64, Option<Vec<u8>>>,
}

impl Redactions {
    /// Also checks each redacted copy against the SHA-256 its latest redaction entry records.
    pub fn checking_copies() -> Redactions {
        Redactions {
            check_copies: true,
            ..Redactions::default()
        }
    }

    /// Notes one checked entry.
    pub fn see(&mut self, e: &StoredEntry) {
        if e.redacted {
            self.missing.insert(e.seq, e.body_sha256.clone());
            self.copies
                .insert(e.seq, e.copy.as_deref().map(|c| body_hash(c).to_vec()));
        }
        if e.kind == super::entry::KIND_REDACTION
            && let Some(redaction) = super::redaction::RedactionBody::parse(&e.body)
        {
            for (seq, sha) in redaction.erased() {
                if let Some(sha) = super::entry::parse_hash(&sha) {
                    self.named.insert((seq, sha.to_vec()));
                }
            }
            for (seq, copy) in redaction.copies() {
                let copy = copy.and_then(|c| super::entry::parse_hash(&c).map(|h| h.to_vec()));
                self.recorded_copies.insert(seq, copy);
            }
        }
    }

    /// How many bodies are missing, all accounted for; or the first that is not.
    pub fn finish(&self) -> Result<u64, Problem> {
        for (seq, sha) in &self.missing {
            if !self.named.contains(&(*seq, sha.clone())) {
                return Err(Problem::BodyMissing { seq: *seq });
            }
            if self.check_copies
                && self.copies.get(seq).cloned().flatten()
                    != self.recorded_copies.get(seq).cloned().flatten()
            {
                return Err(Problem::CopyMismatch { seq: *seq });
            }
        }
        Ok(self.missing.len() as u64)
    }
}

/// Checks one entry at position `expected_seq` following `prev_hash`; returns its hash.
pub fn check_entry(
    log_name: &str,
    expected_seq: u64,
    prev_hash: &Hash,
    e: &StoredEntry,
) -> Result<Hash, Problem> {
    if e.seq != expected_seq {
        return Err(Problem::Gap {
            expected: expected_seq,
            found: e.seq,
        });
    }
    // A redacted body is checked against the redaction entries ([`Redactions`]).
    if !e.redacted && body_hash(&e.body)[..] != e.body_sha256[..] {
        return Err(Problem::BodyHash { seq: e.seq });
    }
    let fields = e.fields(log_name);
    let stored_prev = fields.prev_hash;
    let hash = fields.entry_hash();
    if hash[..] != e.entry_hash[..] {
        return Err(Problem::EntryHash { seq: e.seq });
    }
    if stored_prev != *prev_hash {
        return Err(Problem::PrevHash { seq: e.seq });
    }
    Ok(hash)
}

/// Walks the whole log `log_name`, calling `progress(entries_done, total)` as it goes.
pub async fn verify_log(
    pool: &PgPool,
    log_name: &str,
    check: impl Into<Check>,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifiedHead, VerifyError> {
    let check = check.into();
    let expected = check.head;
    let row = sqlx::query(
        "SELECT l.id, (SELECT count(*) FROM log_entries e WHERE e.log_id = l.id)
           FROM logs l WHERE l.name = $1",
    )
    .bind(log_name)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| VerifyError::UnknownLog(log_name.to_string()))?;
    let log_id: i64 = row.get(0);
    let total = row.get::<i64, _>(1) as u64;
    let bad = |problem| VerifyError::Bad {
        log: log_name.to_string(),
        problem,
    };

    // Every checkpoint ever signed (size and root; each is checked as the walk reaches it).
    let checkpoints: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT tree_size, root_hash FROM checkpoints WHERE log_id = $1 ORDER BY tree_size",
    )
    .bind(log_id)
    .fetch_all(pool)
    .await?;
    let mut pending = checkpoints.iter().peekable();
    let mut matched = 0u64;
    let mut frontier = Frontier::default();

    let mut next_seq = 0u64;
    let mut prev_hash = GENESIS_PREV_HASH;
    let mut redactions = Redactions::checking_copies();
    loop {
        let rows = store::entries_from(pool, log_id, next_seq, PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for entry in &rows {
            prev_hash = check_entry(log_name, next_seq, &prev_hash, entry).map_err(bad)?;
            redactions.see(entry);
            frontier.push(merkle::leaf_hash(&prev_hash));
            while let Some((size, root)) = pending.next_if(|(s, _)| *s as u64 <= frontier.size()) {
                if *size as u64 != frontier.size() || frontier.root()[..] != root[..] {
                    return Err(bad(Problem::CheckpointRoot { size: *size as u64 }));
                }
                matched += 1;
            }
            if let Some(exp) = expected
                && exp.size == next_seq + 1
                && exp.hash != prev_hash
            {
                return Err(bad(Problem::HeadMismatch {
                    seq: next_seq,
                    actual: hex::encode(prev_hash),
                    expected: hex::encode(exp.hash),
                }));
            }
            next_seq += 1;
        }
        progress(next_seq, total.max(next_seq));
    }
    let redacted = redactions.finish().map_err(bad)?;
    if let Some((size, _)) = pending.next() {
        return Err(bad(Problem::CheckpointBeyondLog {
            size: *size as u64,
            log_size: next_seq,
        }));
    }
    if let Some(exp) = expected
        && next_seq < exp.size
    {
        return Err(bad(Problem::Truncated {
            size: next_seq,
            expected: exp.size,
        }));
    }
    let signed = match (&check.key, checkpoints.last()) {
        (Some(key), Some((size, root))) => {
            let size = *size as u64;
            let note: String = sqlx::query_scalar(
                "SELECT note FROM checkpoints WHERE log_id = $1 AND tree_size = $2",
            )
            .bind(log_id)
            .bind(size as i64)
            .fetch_one(pool)
            .await?;
            // The given key, or one it handed over to through the log's rotations.
            let rotations = super::keys::stored(pool, log_id).await?;
            let opened = super::keys::follow(key, &rotations)
                .1
                .iter()
                .rev()
                .find_map(|r| r.new.open_checkpoint(&note).ok())
                .map_or_else(|| key.open_checkpoint(&note), Ok);
            match opened {
                Ok(c) if c.size == size && c.root[..] == root[..] => Some(size),
                Ok(_) => {
                    return Err(bad(Problem::CheckpointSignature {
                        size,
                        reason: "the note signs another size or root than its row".into(),
                    }));
                }
                Err(e) => {
                    return Err(bad(Problem::CheckpointSignature {
                        size,
                        reason: e.to_string(),
                    }));
                }
            }
        }
        _ => None,
    };
    Ok(VerifiedHead {
        log_name: log_name.to_string(),
        size: next_seq,
        head_hash: (next_seq > 0).then_some(prev_hash),
        checkpoints: matched,
        signed,
        redacted,
    })
}
