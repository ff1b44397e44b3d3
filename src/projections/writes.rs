//! Writes what a page of deliveries projects to, in a handful of statements for the whole page
//! instead of several per entry: the projector keeps up with intake at thousands of deliveries
//! a second only if it does not pay a database round trip per row.
//!
//! The result is the same as applying the entries one by one in log order; each merge below
//! says how it keeps that promise.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::decisions::{Decision, Projected, PullRequestSnapshot};
use super::features::{FeatureLink, LinkSource};

/// Applies `page` (entries of log `log_id` in log order, with what each projects to).
pub async fn write_page(
    tx: &mut PgConnection,
    log_id: i64,
    page: &[(i64, &Projected)],
) -> sqlx::Result<()> {
    let merged = Merged::of(page);
    write_repositories(tx, log_id, &merged.repositories).await?;
    write_decisions(tx, log_id, &merged.decisions).await?;
    write_features(tx, &merged.features).await?;
    write_pull_requests(tx, &merged.pull_requests).await?;
    Ok(())
}

/// A page's writes, merged per row.
#[derive(Default)]
struct Merged<'a> {
    /// Per repository: its visibility as of the newest observation by GitHub's clock (the
    /// later entry on equal times, as one by one an observation replaces any not newer), and
    /// the newest activity (one by one, `last_activity` keeps the greatest).
    repositories: BTreeMap<&'a str, RepoRow>,
    decisions: Vec<(i64, i32, &'a Decision)>,
    /// Per feature: the title and whether it comes from the issue. One by one, the first link
    /// creates the feature and each later issue-titled link retitles it, so the merge is the
    /// first link, replaced by every later issue-titled one.
    features: BTreeMap<(&'a str, &'a str), (&'a str, bool)>,
    /// Per pull request: its newest state in the page (the later entry on equal `updated_at`,
    /// as one by one a state replaces any not newer) and that entry's feature links, the only
    /// ones that survive it.
    pull_requests: BTreeMap<(&'a str, i64), (&'a PullRequestSnapshot, Vec<&'a FeatureLink>)>,
}

impl<'a> Merged<'a> {
    fn of(page: &'a [(i64, &'a Projected)]) -> Self {
        let mut m = Merged::default();
        for (seq, p) in page {
            if let Some(r) = &p.repository {
                // Activity: the decisions' and PR's own times, else the observation's.
                let activity = p
                    .decisions
                    .iter()
                    .map(|d| d.occurred_at)
                    .chain(p.pull_request.iter().map(|pr| pr.updated_at))
                    .max()
                    .unwrap_or(r.as_of);
                let seen = RepoRow {
                    private: r.private,
                    as_of: r.as_of,
                    activity,
                };
                m.repositories
                    .entry(r.name.as_str())
                    .and_modify(|held| {
                        if seen.as_of >= held.as_of {
                            held.private = seen.private;
                            held.as_of = seen.as_of;
                        }
                        held.activity = held.activity.max(seen.activity);
                    })
                    .or_insert(seen);
            }
            for (ordinal, d) in p.decisions.iter().enumerate() {
                m.decisions.push((*seq, ordinal as i32, d));
            }
            for link in &p.features {
                let by_issue = link.source == LinkSource::IssueTitle;
                m.features
                    .entry((link.repo.as_str(), link.key.as_str()))
                    .and_modify(|title| {
                        if by_issue {
                            *title = (link.title.as_str(), true);
                        }
                    })
                    .or_insert((link.title.as_str(), by_issue));
            }
            if let Some(pr) = &p.pull_request {
                let links: Vec<&FeatureLink> = p
                    .features
                    .iter()
                    .filter(|l| l.pr_number.is_some())
                    .collect();
                m.pull_requests
                    .entry((pr.repo.as_str(), pr.number))
                    .and_modify(|held| {
                        if pr.updated_at >= held.0.updated_at {
                            *held = (pr, links.clone());
                        }
                    })
                    .or_insert((pr, links));
            }
        }
        m
    }
}

/// One repository's merged observations in a page.
struct RepoRow {
    private: bool,
    as_of: DateTime<Utc>,
    activity: DateTime<Utc>,
}

/// Visibility follows the newest observation by GitHub's clock whatever the order entries
/// arrive in (a late, older delivery cannot make a privatized repository public again).
async fn write_repositories(
    tx: &mut PgConnection,
    log_id: i64,
    repositories: &BTreeMap<&str, RepoRow>,
) -> sqlx::Result<()> {
    if repositories.is_empty() {
        return Ok(());
    }
    let repos: Vec<&str> = repositories.keys().copied().collect();
    let private: Vec<bool> = repositories.values().map(|v| v.private).collect();
    let as_of: Vec<DateTime<Utc>> = repositories.values().map(|v| v.as_of).collect();
    let activity: Vec<DateTime<Utc>> = repositories.values().map(|v| v.activity).collect();
    sqlx::query(
        "INSERT INTO repositories (repo, log_id, private, private_as_of, last_activity)
         SELECT r, $1, p, o, a
           FROM UNNEST($2::text[], $3::boolean[], $4::timestamptz[], $5::timestamptz[])
                AS t(r, p, o, a)
         ON CONFLICT (repo) DO UPDATE SET
             private = CASE WHEN EXCLUDED.private_as_of >= repositories.private_as_of
                            THEN EXCLUDED.private ELSE repositories.private END,
             private_as_of = greatest(repositories.private_as_of, EXCLUDED.private_as_of),
             last_activity = greatest(repositories.last_activity, EXCLUDED.last_activity)",
    )
    .bind(log_id)
    .bind(repos)
    .bind(private)
    .bind(as_of)
    .bind(activity)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Decision records, one per natural key (`source_key`): within the page a delivery's record
/// is kept over an API one of the same key (otherwise the first), and a stored API record is
/// replaced by a delivery's. One by one, in either order, that ends the same way: the
/// delivery's record stands.
async fn write_decisions(
    tx: &mut PgConnection,
    log_id: i64,
    decisions: &[(i64, i32, &Decision)],
) -> sqlx::Result<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    let mut by_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut keep = vec![true; decisions.len()];
    for (i, (_, _, d)) in decisions.iter().enumerate() {
        let Some(key) = d.source_key.as_deref() else {
            continue;
        };
        match by_key.get(&(d.repo.as_str(), key)) {
            Some(&held) if decisions[held].2.from_api.is_some() && d.from_api.is_none() => {
                keep[held] = false;
                by_key.insert((d.repo.as_str(), key), i);
            }
            Some(_) => keep[i] = false,
            None => {
                by_key.insert((d.repo.as_str(), key), i);
            }
        }
    }
    let decisions: Vec<&(i64, i32, &Decision)> = decisions
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(d, _)| d)
        .collect();
    // A delivery's record replaces the API record of the same thing.
    let replacing: Vec<(&str, &str)> = decisions
        .iter()
        .filter(|(_, _, d)| d.from_api.is_none())
        .filter_map(|(_, _, d)| Some((d.repo.as_str(), d.source_key.as_deref()?)))
        .collect();
    if !replacing.is_empty() {
        sqlx::query(
            "DELETE FROM decisions d USING UNNEST($1::text[], $2::text[]) AS k(repo, source_key)
              WHERE d.repo = k.repo AND d.source_key = k.source_key AND d.from_api IS NOT NULL",
        )
        .bind(replacing.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(replacing.iter().map(|k| k.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    let n = decisions.len();
    let (mut seq, mut ordinal, mut repo, mut private, mut pr) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut kind, mut actor, mut at, mut sha, mut body, mut details) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut source_key, mut from_api) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (s, o, d) in decisions {
        seq.push(*s);
        ordinal.push(*o);
        repo.push(d.repo.as_str());
        private.push(d.repo_private);
        pr.push(d.pr_number);
        kind.push(d.kind.as_str());
        actor.push(d.actor.as_deref());
        at.push(d.occurred_at);
        sha.push(d.commit_sha.as_deref());
        body.push(d.body.as_deref());
        details.push(d.details.to_string());
        source_key.push(d.source_key.as_deref());
        from_api.push(d.from_api);
    }
    sqlx::query(
        "INSERT INTO decisions (log_id, seq, ordinal, repo, repo_private, pr_number, kind,
             actor, occurred_at, commit_sha, body, details, source_key, from_api)
         SELECT $1, s, o, r, p, n, k, a, t, c, b, d::jsonb, sk, fa
           FROM UNNEST($2::bigint[], $3::integer[], $4::text[], $5::boolean[], $6::bigint[],
                       $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::text[],
                       $12::text[], $13::text[], $14::timestamptz[])
                AS x(s, o, r, p, n, k, a, t, c, b, d, sk, fa)
         ON CONFLICT DO NOTHING",
    )
    .bind(log_id)
    .bind(seq)
    .bind(ordinal)
    .bind(repo)
    .bind(private)
    .bind(pr)
    .bind(kind)
    .bind(actor)
    .bind(at)
    .bind(sha)
    .bind(body)
    .bind(details)
    .bind(source_key)
    .bind(from_api)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn write_features(
    tx: &mut PgConnection,
    features: &BTreeMap<(&str, &str), (&str, bool)>,
) -> sqlx::Result<()> {
    if features.is_empty() {
        return Ok(());
    }
    let repo: Vec<&str> = features.keys().map(|k| k.0).collect();
    let key: Vec<&str> = features.keys().map(|k| k.1).collect();
    let title: Vec<&str> = features.values().map(|v| v.0).collect();
    let by_issue: Vec<bool> = features.values().map(|v| v.1).collect();
    sqlx::query(
        "INSERT INTO features (repo, key, title, titled_by_issue)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::boolean[])
         ON CONFLICT (repo, key) DO UPDATE
            SET title = EXCLUDED.title, titled_by_issue = true
          WHERE EXCLUDED.titled_by_issue",
    )
    .bind(repo)
    .bind(key)
    .bind(title)
    .bind(by_issue)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores each pull request's newest state, unless the stored one is newer (deliveries may
/// arrive out of order), and replaces its feature links with the ones that state shows.
async fn write_pull_requests(
    tx: &mut PgConnection,
    pull_requests: &BTreeMap<(&str, i64), (&PullRequestSnapshot, Vec<&FeatureLink>)>,
) -> sqlx::Result<()> {
    if pull_requests.is_empty() {
        return Ok(());
    }
    let repos: Vec<&str> = pull_requests.keys().map(|k| k.0).collect();
    let numbers: Vec<i64> = pull_requests.keys().map(|k| k.1).collect();
    let stored: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT p.repo, p.number, p.updated_at FROM pull_requests p
           JOIN UNNEST($1::text[], $2::bigint[]) AS k(repo, number)
             ON p.repo = k.repo AND p.number = k.number",
    )
    .bind(&repos)
    .bind(&numbers)
    .fetch_all(&mut *tx)
    .await?;
    let stored: HashMap<(&str, i64), DateTime<Utc>> = stored
        .iter()
        .map(|(repo, number, at)| ((repo.as_str(), *number), *at))
        .collect();
    let newest: Vec<&(&PullRequestSnapshot, Vec<&FeatureLink>)> = pull_requests
        .iter()
        .filter(|((repo, number), (pr, _))| {
            stored
                .get(&(*repo, *number))
                .is_none_or(|at| pr.updated_at >= *at)
        })
        .map(|(_, held)| held)
        .collect();
    if newest.is_empty() {
        return Ok(());
    }
    let prs: Vec<&PullRequestSnapshot> = newest.iter().map(|(pr, _)| *pr).collect();
    sqlx::query(
        "INSERT INTO pull_requests (repo, number, repo_private, title, author, state, draft,
             merged, merged_by, merged_at, merge_commit_sha, head_sha, base_ref, html_url,
             body, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::boolean[], $4::text[], $5::text[],
             $6::text[], $7::boolean[], $8::boolean[], $9::text[], $10::timestamptz[],
             $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[])
         ON CONFLICT (repo, number) DO UPDATE SET repo_private = EXCLUDED.repo_private,
             title = EXCLUDED.title, author = EXCLUDED.author, state = EXCLUDED.state,
             draft = EXCLUDED.draft, merged = EXCLUDED.merged, merged_by = EXCLUDED.merged_by,
             merged_at = EXCLUDED.merged_at, merge_commit_sha = EXCLUDED.merge_commit_sha,
             head_sha = EXCLUDED.head_sha, base_ref = EXCLUDED.base_ref,
             html_url = EXCLUDED.html_url, body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
    )
    .bind(prs.iter().map(|p| p.repo.as_str()).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.number).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.repo_private).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.title.as_str()).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.author.as_deref()).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.state.as_str()).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.draft).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.merged).collect::<Vec<_>>())
    .bind(
        prs.iter()
            .map(|p| p.merged_by.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(prs.iter().map(|p| p.merged_at).collect::<Vec<_>>())
    .bind(
        prs.iter()
            .map(|p| p.merge_commit_sha.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        prs.iter()
            .map(|p| p.head_sha.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        prs.iter()
            .map(|p| p.base_ref.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        prs.iter()
            .map(|p| p.html_url.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(prs.iter().map(|p| p.body.as_deref()).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.updated_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    // The PR's feature links are those its newest state shows.
    sqlx::query(
        "DELETE FROM feature_pull_requests f USING UNNEST($1::text[], $2::bigint[]) AS k(repo, number)
          WHERE f.pr_repo = k.repo AND f.pr_number = k.number",
    )
    .bind(prs.iter().map(|p| p.repo.as_str()).collect::<Vec<_>>())
    .bind(prs.iter().map(|p| p.number).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let links: Vec<(&FeatureLink, &PullRequestSnapshot)> = newest
        .iter()
        .flat_map(|(pr, links)| links.iter().map(move |l| (*l, *pr)))
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO feature_pull_requests (repo, key, pr_repo, pr_number, source)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(
        links
            .iter()
            .map(|(l, _)| l.repo.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        links
            .iter()
            .map(|(l, _)| l.key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        links
            .iter()
            .map(|(_, pr)| pr.repo.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(links.iter().map(|(l, _)| l.pr_number).collect::<Vec<_>>())
    .bind(
        links
            .iter()
            .map(|(l, _)| l.source.as_str())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
