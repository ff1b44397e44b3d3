//! Reading what the rules judge: each PR's review, merge and check decisions, in GitHub's
//! order, as [`Fact`]s. Pages (review summaries) and the judge read them the same way.

use std::collections::{BTreeMap, HashMap};

use sqlx::{PgPool, Row};

use super::rules::Fact;

/// (repo, PR number).
pub type PrKey = (String, i64);

/// The rule-relevant decisions of `prs`, in order, by PR.
pub async fn load(pool: &PgPool, prs: &[PrKey]) -> sqlx::Result<BTreeMap<PrKey, Vec<Fact>>> {
    let mut out: BTreeMap<PrKey, Vec<Fact>> = BTreeMap::new();
    if prs.is_empty() {
        return Ok(out);
    }
    let repos: Vec<String> = prs.iter().map(|p| p.0.clone()).collect();
    let numbers: Vec<i64> = prs.iter().map(|p| p.1).collect();
    // Log names once, not joined per row (there are few logs).
    let log_names: HashMap<i64, String> =
        sqlx::query_as::<_, (i64, String)>("SELECT id, name FROM logs")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    // Only the two detail fields the rules use are read: decoding every review's JSON
    // details cost the feature page a quarter of its time.
    let rows = sqlx::query(
        "SELECT d.repo, d.pr_number, d.kind, d.actor, d.commit_sha, d.occurred_at, d.seq,
                d.log_id, (d.details ->> 'review_id')::bigint AS review_id,
                CASE WHEN d.kind LIKE 'check.%'
                     THEN coalesce(d.details ->> 'name', d.details ->> 'context') END AS check_name
           FROM decisions d JOIN UNNEST($1::text[], $2::bigint[]) AS w(repo, number)
             ON d.repo = w.repo AND d.pr_number = w.number
          WHERE d.kind IN ('review.approved', 'review.changes_requested', 'review.dismissed',
                           'pr.merged')
             OR d.kind LIKE 'check.%'
          ORDER BY d.occurred_at, d.log_id, d.seq, d.ordinal",
    )
    .bind(&repos)
    .bind(&numbers)
    .fetch_all(pool)
    .await?;
    for e in rows {
        let log_id: i64 = e.get("log_id");
        out.entry((e.get("repo"), e.get("pr_number")))
            .or_default()
            .push(Fact {
                kind: e.get("kind"),
                actor: e.get("actor"),
                commit_sha: e.get("commit_sha"),
                occurred_at: e.get("occurred_at"),
                review_id: e.get("review_id"),
                check_name: e.get("check_name"),
                record: (
                    log_names.get(&log_id).cloned().unwrap_or_default(),
                    e.get("seq"),
                ),
            });
    }
    Ok(out)
}
