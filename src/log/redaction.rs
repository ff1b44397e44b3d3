//! Erasing what must be erased while keeping every proof: an entry's body bytes are removed
//! (all of them, keeping a skeleton; or named JSON fields, keeping a redacted copy), every
//! hashed field stays, so the chain, the Merkle tree, the checkpoints and every inclusion
//! proof remain valid. The erasure is itself on the record: a `verdict-redaction` entry
//! appended in the same transaction, which the database requires
//! (migrations/0014_redaction.sql). What the entry derived is derived again from the copy, so
//! decision records stay with their texts `[redacted]`, exactly as a rebuild derives them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use super::entry::{KIND_REDACTION, body_hash};
use super::store::{self, NewEntry, PlacedEntry};

/// What replaces a redacted text.
pub const REDACTED: &str = "[redacted]";

/// The kinds of entry whose bodies may be erased: what GitHub sent, and acknowledgements
/// (their notes are a person's words). verdict's other entries (findings, withdrawals,
/// reconciliations, key rotations) are derived from those and say nothing new of anyone.
const REDACTABLE: &[&str] = &[
    super::entry::KIND_GITHUB_DELIVERY,
    super::entry::KIND_GITHUB_API,
    super::entry::KIND_ACK,
];

/// The JSON body of a `verdict-redaction` entry (docs/log-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionBody {
    /// The one entry erased (absent for a batch, which lists `targets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// Hex SHA-256 of the erased body (as the target entry stores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_body_sha256: Option<String>,
    /// A batch (retention): every entry erased, with its body's SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// The fields replaced in the redacted copy (`comment.body`, ...); empty: the whole body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Hex SHA-256 of the redacted copy kept in the body's place, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_sha256: Option<String>,
    /// The repository the erased entry was about, so the erased entry and this one stay
    /// visible to exactly who could see it before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryName>,
}

/// `{"full_name": "owner/name"}`, shaped like GitHub's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryName {
    pub full_name: String,
}

/// The repository an entry is about: its request URL's for an API object, the payload's
/// `repository.full_name` (JSON, or GitHub's form encoding) otherwise.
fn repository_of(entry: &store::StoredEntry) -> Option<String> {
    if entry.kind == super::entry::KIND_GITHUB_API {
        return entry
            .hook_id
            .as_deref()
            .and_then(|url| crate::projections::api::repo_and_number(url).0);
    }
    json_of(entry.readable_body()?)?
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One entry a batch erases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub seq: u64,
    /// Hex SHA-256 of its body.
    pub body_sha256: String,
    /// Hex SHA-256 of the skeleton kept in its place, when it carried decision records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_sha256: Option<String>,
}

impl RedactionBody {
    pub fn parse(body: &[u8]) -> Option<RedactionBody> {
        serde_json::from_slice(body).ok()
    }

    /// Every (seq, hex body SHA-256) this entry erases.
    pub fn erased(&self) -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = self
            .targets
            .iter()
            .map(|t| (t.seq, t.body_sha256.clone()))
            .collect();
        if let (Some(seq), Some(sha)) = (self.target_seq, &self.target_body_sha256) {
            out.push((seq, sha.clone()));
        }
        out
    }

    /// Every (seq, hex SHA-256 of the copy kept in its place, if any) this entry erases.
    pub fn copies(&self) -> Vec<(u64, Option<String>)> {
        let mut out: Vec<(u64, Option<String>)> = self
            .targets
            .iter()
            .map(|t| (t.seq, t.copy_sha256.clone()))
            .collect();
        if let Some(seq) = self.target_seq {
            out.push((seq, self.copy_sha256.clone()));
        }
        out
    }
}

/// What to erase.
#[derive(Debug, Clone)]
pub struct Request {
    pub log: String,
    pub seq: u64,
    pub reason: String,
    pub by: String,
    /// Dotted paths of JSON fields to replace (`review.body`); empty: the whole body.
    pub fields: Vec<String>,
    /// For a whole-body redaction: keep the entry's [`skeleton`], so the decision records
    /// derived from it stay (who did what, when) with every text `[redacted]`. `false` erases
    /// those records too.
    pub keep_records: bool,
}

/// A redaction done.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub log: String,
    pub target_seq: u64,
    /// Where the redaction entry is.
    pub redaction_seq: u64,
    /// Fields replaced, when not the whole body.
    pub fields: Vec<String>,
    /// Whether a copy (redacted fields, or the skeleton) stays in the body's place.
    pub copy_kept: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    #[error("log {log:?} has no entry {seq}")]
    NoEntry { log: String, seq: u64 },
    #[error("entry {seq} of {log:?} is already redacted: its redaction entry says by whom and why")]
    Already { log: String, seq: u64 },
    #[error(
        "entry {seq} of {log:?} is a redaction entry: the record of an erasure is never erased"
    )]
    RedactionEntry { log: String, seq: u64 },
    #[error(
        "entry {seq} of {log:?} is not JSON, so it has no fields to redact; redact the whole body"
    )]
    NotJson { log: String, seq: u64 },
    #[error(
        "none of the fields {fields:?} is a text in entry {seq} of {log:?}: nothing would be erased"
    )]
    NoSuchField {
        log: String,
        seq: u64,
        fields: Vec<String>,
    },
    #[error(
        "entry {seq} of {log:?} is a {kind} entry verdict derived from other entries: redact \
         those entries, and `verdict reproject` derives it again"
    )]
    Derived { log: String, seq: u64, kind: String },
    #[error("say why and who: --reason and --by must not be empty")]
    Unexplained,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Replaces every string at the dotted `path` (through arrays too) with [`REDACTED`];
/// returns how many were replaced.
fn replace_at(value: &mut Value, path: &[&str]) -> usize {
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter_mut().map(|v| replace_at(v, path)).sum(),
        (Value::Object(map), Some((head, rest))) => match map.get_mut(*head) {
            Some(v) if rest.is_empty() => match v {
                Value::String(s) if s != REDACTED => {
                    *v = Value::String(REDACTED.into());
                    1
                }
                _ => 0,
            },
            Some(v) => replace_at(v, rest),
            None => 0,
        },
        _ => 0,
    }
}

/// The redacted copy of `body` with `fields` replaced, or why there is none.
pub fn redacted_copy(body: &[u8], fields: &[String]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let replaced: usize = fields
        .iter()
        .map(|f| replace_at(&mut value, &f.split('.').collect::<Vec<_>>()))
        .sum();
    (replaced > 0).then(|| serde_json::to_vec(&value).unwrap_or_default())
}

/// Strings a [`skeleton`] keeps besides times (`*_at`): names of things, identities, states
/// and references, what decision records are made of. Every other string is prose someone
/// wrote (bodies, descriptions, messages, e-mail addresses) and becomes [`REDACTED`].
const SKELETON_KEEPS: &[&str] = &[
    "action",
    "after",
    "author_association",
    "base_ref",
    "before",
    "by",
    "color",
    "commit_id",
    "conclusion",
    "context",
    "decision",
    "default_branch",
    "event",
    "full_name",
    "head_sha",
    "html_url",
    "key",
    "label",
    "login",
    "merge_commit_sha",
    "mergeable_state",
    "name",
    "node_id",
    "path",
    "ref",
    "sha",
    "slug",
    "state",
    "status",
    "title",
    "type",
    "via",
    "visibility",
];

fn blank_prose(value: &mut Value, key: &str) {
    match value {
        Value::String(text) => {
            let kept = key.ends_with("_at") || SKELETON_KEEPS.contains(&key);
            if !kept && !text.is_empty() {
                *text = REDACTED.into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| blank_prose(v, key)),
        Value::Object(members) => {
            // A git identity ({name, email}): its name is a person's, not a thing's.
            let identity = members.contains_key("email");
            for (k, v) in members.iter_mut() {
                blank_prose(v, if identity && k == "name" { "" } else { k });
            }
        }
        _ => {}
    }
}

/// The JSON of a body: JSON itself, or the `payload` of GitHub's form encoding.
fn json_of(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok().or_else(|| {
        let (_, payload) = form_urlencoded::parse(body).find(|(k, _)| k == "payload")?;
        serde_json::from_str(&payload).ok()
    })
}

/// What a whole-body redaction keeps in the body's place so the decision records derived
/// from it survive, in pages and in rebuilds alike: the JSON without API links, every number,
/// flag and structure kept, the strings [`SKELETON_KEEPS`] names kept, and every other string
/// (the texts people wrote) replaced by [`REDACTED`]. `None` for a body that is not JSON.
pub fn skeleton(body: &[u8]) -> Option<Vec<u8>> {
    let mut value = crate::projections::payload::prune(&json_of(body)?);
    blank_prose(&mut value, "");
    serde_json::to_vec(&value).ok()
}

/// Erases entry `request.seq`'s body (or the named fields of it): appends the redaction entry
/// and erases in one transaction, and blanks what projections derived from it. Returns once
/// durable.
pub async fn redact(pool: &PgPool, request: &Request) -> Result<Receipt, RedactionError> {
    if request.reason.trim().is_empty() || request.by.trim().is_empty() {
        return Err(RedactionError::Unexplained);
    }
    let (log, seq) = (request.log.clone(), request.seq);
    let mut tx = pool.begin().await?;
    let log_id: i64 = sqlx::query_scalar("SELECT id FROM logs WHERE name = $1")
        .bind(&log)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| RedactionError::NoEntry {
            log: log.clone(),
            seq,
        })?;
    store::lock_log(&mut *tx, log_id).await?;
    crate::projections::projector::hold_projector(&mut tx, log_id).await?;
    let target =
        store::entry_at(&mut *tx, &log, seq)
            .await?
            .ok_or_else(|| RedactionError::NoEntry {
                log: log.clone(),
                seq,
            })?;
    if target.kind == KIND_REDACTION {
        return Err(RedactionError::RedactionEntry { log, seq });
    }
    if !REDACTABLE.contains(&target.kind.as_str()) {
        return Err(RedactionError::Derived {
            log,
            seq,
            kind: target.kind.clone(),
        });
    }
    // An erased body leaves only its redacted copy to redact further (or to remove).
    let current: &[u8] = match (&target.copy, target.redacted) {
        (_, false) => &target.body,
        (Some(copy), true) => copy,
        (None, true) => return Err(RedactionError::Already { log, seq }),
    };
    let copy = if !request.fields.is_empty() {
        if serde_json::from_slice::<serde::de::IgnoredAny>(current).is_err() {
            return Err(RedactionError::NotJson { log, seq });
        }
        Some(redacted_copy(current, &request.fields).ok_or_else(|| {
            RedactionError::NoSuchField {
                log: log.clone(),
                seq,
                fields: request.fields.clone(),
            }
        })?)
    } else if request.keep_records {
        let kept = skeleton(current);
        // What is left is already a skeleton: nothing more to erase while keeping records.
        if target.redacted && kept.as_deref() == Some(current) {
            return Err(RedactionError::Already { log, seq });
        }
        kept
    } else {
        None
    };
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default();
    let body = serde_json::to_vec(&RedactionBody {
        target_seq: Some(seq),
        target_body_sha256: Some(hex::encode(&target.body_sha256)),
        targets: Vec::new(),
        reason: request.reason.trim().to_string(),
        by: request.by.trim().to_string(),
        at: now,
        fields: request.fields.clone(),
        copy_sha256: copy.as_ref().map(|c| hex::encode(body_hash(c))),
        repository: repository_of(&target).map(|full_name| RepositoryName { full_name }),
    })
    .expect("a redaction body serializes");
    let entry = NewEntry {
        log_name: log.clone(),
        kind: KIND_REDACTION.into(),
        received_at: now,
        delivery_id: format!(
            "redaction:{log}:{seq}:{}",
            hex::encode(&body_hash(&body)[..8])
        ),
        event: "redaction".into(),
        hook_id: None,
        installation_target_type: None,
        installation_target_id: None,
        signature: None,
        body_sha256: body_hash(&body),
        body: Bytes::from(body),
        body_readable: true,
    };
    let (next, prev) = store::tail(&mut *tx, log_id).await?;
    let entry_hash = entry.fields(next, prev).entry_hash();
    store::insert_entries(
        &mut *tx,
        log_id,
        &[PlacedEntry {
            entry: &entry,
            seq: next,
            prev_hash: prev,
            entry_hash,
        }],
    )
    .await?;
    sqlx::query("SELECT verdict_redact_body($1, $2, $3)")
        .bind(log_id)
        .bind(seq as i64)
        .bind(copy.as_deref())
        .execute(&mut *tx)
        .await?;
    rederive(&mut tx, log_id, &target, copy.as_deref()).await?;
    rederive_description(&mut tx, &target, current, copy.as_deref()).await?;
    tx.commit().await?;
    Ok(Receipt {
        log,
        target_seq: seq,
        redaction_seq: next,
        fields: request.fields.clone(),
        copy_kept: copy.is_some(),
    })
}

/// Erases the whole bodies of `seqs` of `log` under one redaction entry naming them all
/// (retention). Entries already redacted are skipped; returns how many were erased.
pub async fn redact_batch(
    pool: &PgPool,
    log: &str,
    seqs: &[u64],
    reason: &str,
    by: &str,
) -> Result<usize, RedactionError> {
    let mut tx = pool.begin().await?;
    let Some(log_id) = sqlx::query_scalar::<_, i64>("SELECT id FROM logs WHERE name = $1")
        .bind(log)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(0);
    };
    store::lock_log(&mut *tx, log_id).await?;
    crate::projections::projector::hold_projector(&mut tx, log_id).await?;
    let wanted: Vec<i64> = seqs.iter().map(|s| *s as i64).collect();
    let found: Vec<i64> = sqlx::query_scalar(
        "SELECT seq FROM log_entries
          WHERE log_id = $1 AND seq = ANY($2) AND body IS NOT NULL AND kind = ANY($3)
          ORDER BY seq",
    )
    .bind(log_id)
    .bind(&wanted)
    .bind(REDACTABLE)
    .fetch_all(&mut *tx)
    .await?;
    if found.is_empty() {
        return Ok(0);
    }
    // Each entry with its skeleton when decision records were derived from it: retention
    // drops what people wrote, not the history of who decided what.
    let mut erased = Vec::with_capacity(found.len());
    for seq in found {
        let Some(target) = store::entry_at(&mut *tx, log, seq as u64).await? else {
            continue;
        };
        let copy = derives_records(&target)
            .then(|| skeleton(&target.body))
            .flatten();
        erased.push((target, copy));
    }
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default();
    let body = serde_json::to_vec(&RedactionBody {
        target_seq: None,
        target_body_sha256: None,
        targets: erased
            .iter()
            .map(|(target, copy)| Target {
                seq: target.seq,
                body_sha256: hex::encode(&target.body_sha256),
                copy_sha256: copy.as_ref().map(|c| hex::encode(body_hash(c))),
            })
            .collect(),
        reason: reason.to_string(),
        by: by.to_string(),
        at: now,
        fields: Vec::new(),
        copy_sha256: None,
        repository: None,
    })
    .expect("a redaction body serializes");
    let entry = NewEntry {
        log_name: log.to_string(),
        kind: KIND_REDACTION.into(),
        received_at: now,
        delivery_id: format!(
            "redaction:{log}:batch:{}",
            hex::encode(&body_hash(&body)[..8])
        ),
        event: "redaction".into(),
        hook_id: None,
        installation_target_type: None,
        installation_target_id: None,
        signature: None,
        body_sha256: body_hash(&body),
        body: Bytes::from(body),
        body_readable: true,
    };
    let (next, prev) = store::tail(&mut *tx, log_id).await?;
    let entry_hash = entry.fields(next, prev).entry_hash();
    store::insert_entries(
        &mut *tx,
        log_id,
        &[PlacedEntry {
            entry: &entry,
            seq: next,
            prev_hash: prev,
            entry_hash,
        }],
    )
    .await?;
    for (target, copy) in &erased {
        sqlx::query("SELECT verdict_redact_body($1, $2, $3)")
            .bind(log_id)
            .bind(target.seq as i64)
            .bind(copy.as_deref())
            .execute(&mut *tx)
            .await?;
        rederive(&mut tx, log_id, target, copy.as_deref()).await?;
        rederive_description(&mut tx, target, &target.body, copy.as_deref()).await?;
    }
    tx.commit().await?;
    Ok(erased.len())
}

/// Whether records were derived from `entry`: decision records from what GitHub sent, or an
/// acknowledgement.
fn derives_records(entry: &store::StoredEntry) -> bool {
    if entry.kind == super::entry::KIND_ACK {
        return true;
    }
    let linking = crate::projections::features::FeatureLinking::labels("");
    crate::projections::projector::project_github_entry(entry, &entry.body, &linking)
        .is_ok_and(|p| !p.decisions.is_empty())
}

/// One entry holding text a person wrote, and the fields that hold it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRedaction {
    pub log: String,
    pub seq: u64,
    pub event: String,
    pub fields: Vec<String>,
}

/// Where `login` wrote text: in deliveries, the bodies of the comment, review, pull request
/// or issue they authored; in objects read from GitHub's API, the object's own body; in
/// acknowledgements they made, the note.
/// Entries already redacted are left out (their text is gone or already blanked).
pub fn authored_fields(kind: &str, body: &[u8], login: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let wrote = |object: &Value| {
        object
            .pointer("/user/login")
            .and_then(Value::as_str)
            .is_some_and(|l| l.eq_ignore_ascii_case(login))
            && object
                .get("body")
                .and_then(Value::as_str)
                .is_some_and(|b| !b.is_empty() && b != REDACTED)
    };
    if kind == super::entry::KIND_ACK {
        // An acknowledgement's note is the words of whoever acknowledged.
        let by = value.get("by").and_then(Value::as_str).unwrap_or_default();
        let by = by.strip_prefix('@').unwrap_or(by);
        let note = value
            .get("note")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return if by.eq_ignore_ascii_case(login) && !note.is_empty() && note != REDACTED {
            vec!["note".into()]
        } else {
            Vec::new()
        };
    }
    if kind == super::entry::KIND_GITHUB_API {
        return if wrote(&value) {
            vec!["body".into()]
        } else {
            Vec::new()
        };
    }
    ["comment", "review", "pull_request", "issue"]
        .iter()
        .filter(|o| value.get(**o).is_some_and(wrote))
        .map(|o| format!("{o}.body"))
        .collect()
}

/// Every entry, in every log, with text `login` wrote.
pub async fn plan_for_user(
    pool: &PgPool,
    login: &str,
) -> Result<Vec<PlannedRedaction>, RedactionError> {
    // Bodies, and the redacted copies of bodies already erased in part.
    let rows: Vec<(String, i64, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT l.name, e.seq, e.kind, e.event, coalesce(e.body, c.body) AS body
           FROM log_entries e JOIN logs l ON l.id = e.log_id
           LEFT JOIN redacted_copies c ON c.log_id = e.log_id AND c.seq = e.seq
          WHERE coalesce(e.body, c.body) IS NOT NULL
            AND e.kind IN ('github-delivery', 'github-api', 'verdict-ack')
            -- Logins are ASCII and case-insensitive; escape encoding keeps ASCII as is.
            AND position(lower($1) in lower(encode(coalesce(e.body, c.body), 'escape'))) > 0
          ORDER BY l.name, e.seq",
    )
    .bind(login)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(log, seq, kind, event, body)| {
            let fields = authored_fields(&kind, &body, login);
            (!fields.is_empty()).then_some(PlannedRedaction {
                log,
                seq: seq as u64,
                event,
                fields,
            })
        })
        .collect())
}

/// The pull request's title and description where the stored state is the one this entry
/// showed (the newest, which a rebuild would take from it too): replaced by what the copy
/// shows, or, with nothing kept, the description by `[redacted]`. Texts a later entry still
/// carries stay, as they would in a rebuild: erase every entry carrying them (`verdict redact
/// --user` does).
async fn rederive_description(
    tx: &mut sqlx::PgConnection,
    target: &store::StoredEntry,
    current: &[u8],
    copy: Option<&[u8]>,
) -> sqlx::Result<()> {
    let linking = crate::projections::features::FeatureLinking::labels("");
    let shown = |body: &[u8]| {
        crate::projections::projector::project_github_entry(target, body, &linking)
            .ok()
            .and_then(|p| p.pull_request)
    };
    let Some(before) = shown(current) else {
        return Ok(());
    };
    let after = copy.and_then(shown);
    let (title, body) = match &after {
        Some(after) => (after.title.clone(), after.body.clone()),
        None => (
            before.title.clone(),
            before.body.as_ref().map(|_| REDACTED.to_string()),
        ),
    };
    if (&title, &body) == (&before.title, &before.body) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE pull_requests SET title = $6, body = $7
          WHERE repo = $1 AND number = $2 AND updated_at = $3
            AND title = $4 AND body IS NOT DISTINCT FROM $5",
    )
    .bind(&before.repo)
    .bind(before.number)
    .bind(before.updated_at)
    .bind(&before.title)
    .bind(&before.body)
    .bind(&title)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Makes the projections say what a rebuild from the log says after the erasure: what the
/// entry derived is replaced by what its copy derives (the redacted fields' or the skeleton's
/// records, their texts `[redacted]`), or removed when nothing of it is kept.
async fn rederive(
    tx: &mut sqlx::PgConnection,
    log_id: i64,
    target: &store::StoredEntry,
    copy: Option<&[u8]>,
) -> Result<(), RedactionError> {
    let seq = target.seq as i64;
    if target.kind == super::entry::KIND_ACK {
        sqlx::query("DELETE FROM finding_acks WHERE log_id = $1 AND seq = $2")
            .bind(log_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        if let Some(copy) = copy {
            // A copy that no longer reads as an acknowledgement derives nothing, as in a rebuild.
            use crate::projections::findings::{FindingError, apply_ack};
            if let Err(FindingError::Database(e)) =
                apply_ack(tx, log_id, seq, target.received_at, copy).await
            {
                return Err(e.into());
            }
        }
        return Ok(());
    }
    // Decision records do not depend on how features are linked.
    let linking = crate::projections::features::FeatureLinking::labels("");
    let decisions = copy
        .and_then(|c| crate::projections::projector::project_github_entry(target, c, &linking).ok())
        .map(|p| p.decisions)
        .unwrap_or_default();
    crate::projections::projector::rederive_decisions(tx, log_id, seq, decisions).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_replaced_wherever_the_path_leads() {
        let body = br#"{"review":{"body":"my key is sk-123","id":7},"comments":[{"body":"a"},{"body":"b"}]}"#;
        let copy = redacted_copy(body, &["review.body".into(), "comments.body".into()]).unwrap();
        let v: Value = serde_json::from_slice(&copy).unwrap();
        assert_eq!(v["review"]["body"], REDACTED);
        assert_eq!(v["review"]["id"], 7);
        assert_eq!(v["comments"][1]["body"], REDACTED);
        assert!(redacted_copy(body, &["issue.body".into()]).is_none());
    }

    #[test]
    fn a_skeleton_keeps_who_what_and_when_and_blanks_what_people_wrote() {
        let body = br#"{"action":"submitted","review":{"id":9,"body":"my key is sk-123",
            "state":"approved","submitted_at":"2026-11-02T14:00:00Z","commit_id":"abc",
            "user":{"login":"rev-omar","avatar_url":"https://a","site_admin":false}},
            "pull_request":{"number":42,"title":"Checkout","body":"Fixes #7, call me at 555",
            "labels":[{"name":"feature: checkout","description":"the checkout"}]},
            "head_commit":{"message":"wip","author":{"name":"Omar Q","email":"o@example.com"}},
            "empty":""}"#;
        let kept: Value = serde_json::from_slice(&skeleton(body).unwrap()).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"action":"submitted","review":{"id":9,"body":REDACTED,
                "state":"approved","submitted_at":"2026-11-02T14:00:00Z","commit_id":"abc",
                "user":{"login":"rev-omar","site_admin":false}},
                "pull_request":{"number":42,"title":"Checkout","body":REDACTED,
                "labels":[{"name":"feature: checkout","description":REDACTED}]},
                "head_commit":{"message":REDACTED,"author":{"name":REDACTED,"email":REDACTED}},
                "empty":""})
        );
        // GitHub's form encoding reads the same; a body that is not JSON has no skeleton.
        let form = format!(
            "payload={}",
            form_urlencoded::byte_serialize(body).collect::<String>()
        );
        assert_eq!(skeleton(form.as_bytes()), skeleton(body));
        assert_eq!(skeleton(b"not json"), None);
    }
}
