//! What an entry verdict wrote says, in words: read from the entry's own body (the log is the
//! source of truth) plus what later entries added to it (acknowledgements, a withdrawal), so a
//! finding's permalink — the link every alert, Slack message and check run carries — explains
//! itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::{DECISION_COLUMNS, DecisionView};
use crate::feedback::rules;
use crate::log::entry::{
    KIND_ACK, KIND_FINDING, KIND_FINDING_WITHDRAWN, KIND_KEY_ROTATION, KIND_RECONCILIATION,
    KIND_REDACTION,
};
use crate::projections::coverage::ReconciliationBody;
use crate::projections::findings::{AckBody, FindingBody, WithdrawalBody};
use crate::web::access::Viewer;
use crate::web::error::WebError;
use crate::web::history::{AckItem, Withdrawal, acknowledgements};

/// One of the entries verdict writes, explained. Exactly one member is set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Written {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<FindingView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<AckView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawal: Option<WithdrawalView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<ReconciliationBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_rotation: Option<KeyRotationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redaction: Option<RedactionView>,
}

/// One erased entry.
#[derive(Debug, Clone, Serialize)]
pub struct RedactionTarget {
    pub seq: u64,
    pub url: String,
    pub body_sha256: String,
    /// The copy kept in the body's place: the redacted fields', or the skeleton that keeps
    /// its decision records.
    pub copy_sha256: Option<String>,
}

/// An erasure: which entry, who, why, what.
#[derive(Debug, Clone, Serialize)]
pub struct RedactionView {
    /// Every entry erased (one, or a retention batch).
    pub targets: Vec<RedactionTarget>,
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// Fields replaced in the kept copy; empty: the whole body.
    pub fields: Vec<String>,
}

/// The rule behind a finding, in words.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub id: String,
    pub name: &'static str,
    pub checks: &'static str,
    pub why: &'static str,
    pub url: String,
}

impl RuleView {
    fn of(id: &str) -> RuleView {
        let rule = rules::find(id);
        RuleView {
            id: id.to_string(),
            name: rule.map(|r| r.name).unwrap_or("Unknown rule"),
            checks: rule
                .map(|r| r.description)
                .unwrap_or("a rule this version of verdict does not know"),
            why: rule.map(|r| r.why).unwrap_or(""),
            url: format!("/rules#{id}"),
        }
    }
}

/// A decision record a finding or withdrawal rests on, summarized.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// Its permalink.
    pub url: String,
    /// "alice approved on commit 1a2b3c4", or the permalink when the record is not visible
    /// or not (yet) projected.
    pub summary: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A finding's pull request.
#[derive(Debug, Clone, Serialize)]
pub struct PullRef {
    pub repo: String,
    pub number: i64,
    pub title: Option<String>,
    /// verdict's page of the pull request.
    pub url: String,
    /// The pull request on GitHub (only a link to GitHub's own host).
    pub github_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub rule: RuleView,
    pub severity: String,
    pub message: String,
    pub repo: String,
    pub pull_request: Option<PullRef>,
    pub evidence: Vec<Evidence>,
    /// About history read from GitHub's API: recorded, not alerted.
    pub history: bool,
    pub acknowledgements: Vec<AckItem>,
    pub withdrawn: Option<Withdrawal>,
    /// Where the acknowledge form posts.
    pub acknowledge_url: String,
}

impl FindingView {
    /// "open", "acknowledged" or "withdrawn".
    pub fn status(&self) -> &'static str {
        match (&self.withdrawn, self.acknowledgements.is_empty()) {
            (Some(_), _) => "withdrawn",
            (None, false) => "acknowledged",
            (None, true) => "open",
        }
    }
}

/// What an acknowledgement answers, and who wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct AckView {
    pub finding_url: String,
    pub rule: RuleView,
    /// The finding's message (absent if the finding entry cannot be read).
    pub finding_message: Option<String>,
    pub by: String,
    /// "github" (signed in), "admin-token", or absent for early entries.
    pub via: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WithdrawalView {
    pub finding_url: String,
    pub rule: RuleView,
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyRotationView {
    pub old_key: String,
    pub new_key: String,
    /// The checkpoint the new key takes over from.
    pub size: u64,
    pub root: String,
    /// Both signatures checked.
    pub valid: bool,
}

/// Explains an entry verdict wrote; `None` for GitHub's deliveries and API objects, and for
/// a body that does not read as its kind (the raw bytes still show).
pub async fn read(
    pool: &PgPool,
    account: &str,
    seq: i64,
    kind: &str,
    body: &[u8],
    viewer: &Viewer,
) -> Result<Option<Written>, WebError> {
    let mut written = Written::default();
    match kind {
        KIND_FINDING => {
            let Ok(f) = serde_json::from_slice::<FindingBody>(body) else {
                return Ok(None);
            };
            written.finding = Some(finding(pool, account, seq, f, viewer).await?);
        }
        KIND_ACK => {
            let Ok(a) = serde_json::from_slice::<AckBody>(body) else {
                return Ok(None);
            };
            let target = finding_body(pool, account, a.finding_seq).await?;
            written.acknowledgement = Some(AckView {
                finding_url: format!("/records/{account}/{}", a.finding_seq),
                rule: RuleView::of(target.as_ref().map(|f| f.rule.as_str()).unwrap_or("")),
                finding_message: target.map(|f| f.message),
                by: a.by,
                via: a.via,
                note: a.note,
            });
        }
        KIND_FINDING_WITHDRAWN => {
            let Ok(w) = serde_json::from_slice::<WithdrawalBody>(body) else {
                return Ok(None);
            };
            written.withdrawal = Some(WithdrawalView {
                finding_url: format!("/records/{account}/{}", w.finding_seq),
                rule: RuleView::of(&w.rule),
                evidence: evidence(pool, &w.evidence, viewer).await?,
                reason: w.reason,
            });
        }
        KIND_RECONCILIATION => {
            let Ok(r) = serde_json::from_slice::<ReconciliationBody>(body) else {
                return Ok(None);
            };
            written.reconciliation = Some(r);
        }
        KIND_KEY_ROTATION => {
            let note = String::from_utf8_lossy(body);
            let rotation = crate::log::keys::open_rotation(&note);
            let mut lines = note.lines().skip(1);
            let mut next = |prefix: &str| {
                lines
                    .next()
                    .map(|l| l.strip_prefix(prefix).unwrap_or(l).to_string())
                    .unwrap_or_default()
            };
            let (old_key, new_key, size, root) = (next("old "), next("new "), next(""), next(""));
            written.key_rotation = Some(KeyRotationView {
                old_key,
                new_key,
                size: size.parse().unwrap_or(0),
                root,
                valid: rotation.is_ok(),
            });
        }
        KIND_REDACTION => {
            let Some(r) = crate::log::redaction::RedactionBody::parse(body) else {
                return Ok(None);
            };
            // `erased` and `copies` list the targets in the same order.
            let erased = r.erased();
            let copies = r.copies();
            written.redaction = Some(RedactionView {
                targets: erased
                    .iter()
                    .zip(copies)
                    .map(|((seq, sha), (_, copy))| RedactionTarget {
                        url: format!("/records/{account}/{seq}"),
                        seq: *seq,
                        body_sha256: sha.clone(),
                        copy_sha256: copy,
                    })
                    .collect(),
                by: r.by,
                reason: r.reason,
                at: r.at,
                fields: r.fields,
            });
        }
        _ => return Ok(None),
    }
    Ok(Some(written))
}

async fn finding(
    pool: &PgPool,
    account: &str,
    seq: i64,
    f: FindingBody,
    viewer: &Viewer,
) -> Result<FindingView, WebError> {
    let projected = sqlx::query(
        "SELECT f.withdrawn_seq, f.withdrawn_at, f.withdrawn_why
           FROM findings f JOIN logs l ON l.id = f.log_id WHERE l.name = $1 AND f.seq = $2",
    )
    .bind(account)
    .bind(seq)
    .fetch_optional(pool)
    .await?;
    let withdrawn = projected
        .as_ref()
        .and_then(|r| crate::web::history::withdrawal(r, account));
    let acks = acknowledgements(pool, &[(account.to_string(), seq)])
        .await?
        .remove(&(account.to_string(), seq))
        .unwrap_or_default();
    let pull_request = match f.pull_request {
        Some(number) => {
            let row = sqlx::query(
                "SELECT title, html_url FROM pull_requests WHERE repo = $1 AND number = $2",
            )
            .bind(&f.repository.full_name)
            .bind(number)
            .fetch_optional(pool)
            .await?;
            let html_url: Option<String> = row.as_ref().and_then(|r| r.get("html_url"));
            Some(PullRef {
                url: format!("/{}/pull/{number}", f.repository.full_name),
                title: row.map(|r| r.get("title")),
                github_url: html_url.and_then(|u| viewer.github_link(&u)),
                repo: f.repository.full_name.clone(),
                number,
            })
        }
        None => None,
    };
    Ok(FindingView {
        rule: RuleView::of(&f.rule),
        severity: f.severity,
        message: f.message,
        repo: f.repository.full_name,
        pull_request,
        evidence: evidence(pool, &f.evidence, viewer).await?,
        history: f.history,
        acknowledgements: acks,
        withdrawn,
        acknowledge_url: format!("/findings/{account}/{seq}/acknowledge"),
    })
}

/// The finding entry at `account`/`seq`, read from the log.
async fn finding_body(
    pool: &PgPool,
    account: &str,
    seq: i64,
) -> Result<Option<FindingBody>, WebError> {
    let body: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT e.body FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE l.name = $1 AND e.seq = $2 AND e.kind = $3",
    )
    .bind(account)
    .bind(seq)
    .bind(KIND_FINDING)
    .fetch_optional(pool)
    .await?;
    Ok(body.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Each permalink (`/records/ACCOUNT/SEQ`) with the first decision record of that entry in
/// words, when the viewer may see it.
async fn evidence(
    pool: &PgPool,
    urls: &[String],
    viewer: &Viewer,
) -> Result<Vec<Evidence>, WebError> {
    let places: Vec<(String, i64)> = urls.iter().filter_map(|u| permalink(u)).collect();
    let accounts: Vec<&str> = places.iter().map(|p| p.0.as_str()).collect();
    let seqs: Vec<i64> = places.iter().map(|p| p.1).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{DECISION_COLUMNS} FROM decisions d JOIN logs l ON l.id = d.log_id
           JOIN UNNEST($1::text[], $2::bigint[]) AS w(account, seq)
             ON l.name = w.account AND d.seq = w.seq
          ORDER BY d.log_id, d.seq, d.ordinal"
    )))
    .bind(&accounts)
    .bind(&seqs)
    .fetch_all(pool)
    .await?;
    let mut first: BTreeMap<(String, i64), DecisionView> = BTreeMap::new();
    for d in rows.iter().map(DecisionView::from_row) {
        if viewer.may_see(Some(&d.repo)) {
            first.entry((d.account.clone(), d.seq)).or_insert(d);
        }
    }
    Ok(urls
        .iter()
        .map(|url| {
            let decision = permalink(url).and_then(|p| first.get(&p));
            Evidence {
                url: url.clone(),
                summary: match decision {
                    Some(d) => {
                        let mut s =
                            format!("{} {}", d.actor.as_deref().unwrap_or("someone"), d.summary);
                        if let Some(pr) = d.pr_number {
                            s.push_str(&format!(" on {}#{pr}", d.repo));
                        }
                        if !d.short_sha().is_empty() {
                            s.push_str(&format!(" (commit {})", d.short_sha()));
                        }
                        s
                    }
                    None => format!("record {}", url.trim_start_matches("/records/")),
                },
                occurred_at: decision.map(|d| d.occurred_at),
            }
        })
        .collect())
}

/// `/records/ACCOUNT/SEQ[#dN]` → (account, seq).
fn permalink(url: &str) -> Option<(String, i64)> {
    let rest = url.strip_prefix("/records/")?;
    let rest = rest.split('#').next()?;
    let (account, seq) = rest.split_once('/')?;
    Some((account.to_string(), seq.parse().ok()?))
}
