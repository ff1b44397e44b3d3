//! Checking back: a report per repository, week by week — findings (in the week of the
//! events they judge, not the week verdict judged them), merges that went through cleanly and
//! merges a finding flagged, the median time to a first review and from the last approval to
//! the merge — with SVG charts (no JavaScript) and CSV saying the same.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::access::Viewer;
use super::error::WebError;
use super::{WebState, repo_name};

/// Most recent weeks shown.
pub const WEEKS: i64 = 26;

#[derive(Debug, Clone, Serialize)]
pub struct ReportPage {
    pub repo: String,
    pub account: String,
    pub private: bool,
    /// Oldest first, every week from the first with data to the last (at most [`WEEKS`]).
    pub weeks: Vec<WeekRow>,
    pub totals: ReportTotals,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeekRow {
    /// The Monday starting the ISO week.
    pub week: NaiveDate,
    /// Findings (withdrawn ones aside) about events of this week: the newest record each
    /// rests on (for a merge rule, the merge) falls in it.
    pub findings: i64,
    /// Pull requests merged this week.
    pub merges: i64,
    /// Of those, merged with no finding (withdrawn ones aside).
    pub merges_clean: i64,
    /// Of those, flagged by at least one finding.
    pub merges_flagged: i64,
    /// PRs opened that week that got a first review, and the median wait for it.
    pub prs_first_reviewed: i64,
    pub median_hours_to_first_review: Option<f64>,
    /// PRs merged that week after an approval, and the median time from the last
    /// approval to the merge.
    pub prs_merged_after_approval: i64,
    pub median_hours_approval_to_merge: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportTotals {
    pub findings: i64,
    pub merges: i64,
    pub merges_clean: i64,
    pub merges_flagged: i64,
    pub prs_first_reviewed: i64,
    pub prs_merged_after_approval: i64,
}

type WeekStat = (DateTime<Utc>, i64, Option<f64>);

pub async fn report(pool: &PgPool, repo: &str, viewer: &Viewer) -> Result<ReportPage, WebError> {
    let row = super::repository::repository_row(pool, repo, viewer).await?;
    // A finding belongs to the week of what it judges: the newest of its evidence records
    // (the merge, for the merge rules); the week it was recorded only when none is known.
    let findings: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT date_trunc('week', coalesce(
                    (SELECT max(d.occurred_at)
                       FROM decisions d JOIN logs l ON l.id = d.log_id
                      WHERE d.log_id = f.log_id
                        AND '/records/' || l.name || '/' || d.seq
                            IN (SELECT jsonb_array_elements_text(f.evidence))),
                    f.recorded_at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*)
           FROM findings f WHERE f.repo = $1 AND f.withdrawn_seq IS NULL
          GROUP BY 1",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;
    let first_review: Vec<WeekStat> = sqlx::query_as(
        "WITH opened AS (SELECT pr_number, min(occurred_at) AS at FROM decisions
                          WHERE repo = $1 AND kind = 'pr.opened' GROUP BY pr_number),
              reviewed AS (SELECT d.pr_number, min(d.occurred_at) AS at
                             FROM decisions d JOIN opened o USING (pr_number)
                            WHERE d.repo = $1 AND d.occurred_at >= o.at
                              AND d.kind IN ('review.approved', 'review.changes_requested',
                                             'review.commented')
                            GROUP BY d.pr_number)
         SELECT date_trunc('week', o.at), count(*),
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY extract(epoch FROM r.at - o.at) / 3600)
           FROM opened o JOIN reviewed r USING (pr_number) GROUP BY 1",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;
    let approval_to_merge: Vec<WeekStat> = sqlx::query_as(
        "WITH merged AS (SELECT pr_number, max(occurred_at) AS at FROM decisions
                          WHERE repo = $1 AND kind = 'pr.merged' GROUP BY pr_number),
              approved AS (SELECT m.pr_number, max(d.occurred_at) AS at
                             FROM merged m JOIN decisions d
                               ON d.repo = $1 AND d.pr_number = m.pr_number
                              AND d.kind = 'review.approved' AND d.occurred_at <= m.at
                            GROUP BY m.pr_number)
         SELECT date_trunc('week', m.at), count(*),
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY extract(epoch FROM m.at - a.at) / 3600)
           FROM merged m JOIN approved a USING (pr_number) GROUP BY 1",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;

    let merges: Vec<(DateTime<Utc>, i64, i64)> = sqlx::query_as(
        "WITH merged AS (SELECT pr_number, max(occurred_at) AS at FROM decisions
                          WHERE repo = $1 AND kind = 'pr.merged' GROUP BY pr_number)
         SELECT date_trunc('week', m.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
                count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM findings f WHERE f.repo = $1 AND f.pr_number = m.pr_number
                                               AND f.withdrawn_seq IS NULL))
           FROM merged m GROUP BY 1",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;

    let mut weeks: BTreeMap<NaiveDate, WeekRow> = BTreeMap::new();
    let blank = |week| WeekRow {
        week,
        findings: 0,
        merges: 0,
        merges_clean: 0,
        merges_flagged: 0,
        prs_first_reviewed: 0,
        median_hours_to_first_review: None,
        prs_merged_after_approval: 0,
        median_hours_approval_to_merge: None,
    };
    for (at, n) in &findings {
        weeks
            .entry(at.date_naive())
            .or_insert_with_key(|w| blank(*w))
            .findings = *n;
    }
    for (at, n, flagged) in &merges {
        let w = weeks
            .entry(at.date_naive())
            .or_insert_with_key(|w| blank(*w));
        w.merges = *n;
        w.merges_flagged = *flagged;
        w.merges_clean = n - flagged;
    }
    for (at, n, median) in &first_review {
        let w = weeks
            .entry(at.date_naive())
            .or_insert_with_key(|w| blank(*w));
        w.prs_first_reviewed = *n;
        w.median_hours_to_first_review = median.map(round1);
    }
    for (at, n, median) in &approval_to_merge {
        let w = weeks
            .entry(at.date_naive())
            .or_insert_with_key(|w| blank(*w));
        w.prs_merged_after_approval = *n;
        w.median_hours_approval_to_merge = median.map(round1);
    }
    // Every week in between too, so quiet weeks show as quiet rather than missing.
    if let (Some(first), Some(last)) = (
        weeks.keys().next().copied(),
        weeks.keys().next_back().copied(),
    ) {
        let first = first.max(last - Duration::weeks(WEEKS - 1));
        let mut week = first;
        while week <= last {
            weeks.entry(week).or_insert_with_key(|w| blank(*w));
            week += Duration::weeks(1);
        }
        weeks.retain(|w, _| *w >= first);
    }
    let weeks: Vec<WeekRow> = weeks.into_values().collect();
    let totals = ReportTotals {
        findings: weeks.iter().map(|w| w.findings).sum(),
        merges: weeks.iter().map(|w| w.merges).sum(),
        merges_clean: weeks.iter().map(|w| w.merges_clean).sum(),
        merges_flagged: weeks.iter().map(|w| w.merges_flagged).sum(),
        prs_first_reviewed: weeks.iter().map(|w| w.prs_first_reviewed).sum(),
        prs_merged_after_approval: weeks.iter().map(|w| w.prs_merged_after_approval).sum(),
    };
    Ok(ReportPage {
        repo: repo.to_string(),
        account: row.account,
        private: row.private,
        weeks,
        totals,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl ReportPage {
    /// The weekly table as CSV (RFC 4180; empty cells where a week has no data).
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "week,findings,merges,merges_clean,merges_flagged,prs_first_reviewed,median_hours_to_first_review,prs_merged_after_approval,median_hours_approval_to_merge\r\n",
        );
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for w in &self.weeks {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\r\n",
                w.week,
                w.findings,
                w.merges,
                w.merges_clean,
                w.merges_flagged,
                w.prs_first_reviewed,
                opt(w.median_hours_to_first_review),
                w.prs_merged_after_approval,
                opt(w.median_hours_approval_to_merge)
            ));
        }
        out
    }

    pub fn findings_chart(&self) -> String {
        self.chart(
            "Findings per week (by the week of the events they judge)",
            "findings",
            |w| Some(w.findings as f64),
        )
    }

    pub fn first_review_chart(&self) -> String {
        self.chart(
            "Median time from opening to first review, in hours",
            "hours",
            |w| w.median_hours_to_first_review,
        )
    }

    pub fn approval_to_merge_chart(&self) -> String {
        self.chart(
            "Median time from last approval to merge, in hours",
            "hours",
            |w| w.median_hours_approval_to_merge,
        )
    }

    /// A bar chart as inline SVG: one bar per week, labelled, with a <title> per bar for
    /// exact values. Built from numbers and dates only, so nothing needs escaping.
    fn chart(&self, title: &str, unit: &str, value: impl Fn(&WeekRow) -> Option<f64>) -> String {
        const W: f64 = 640.0;
        const H: f64 = 180.0;
        const LEFT: f64 = 40.0;
        const BOTTOM: f64 = 30.0;
        let values: Vec<Option<f64>> = self.weeks.iter().map(&value).collect();
        let max = values.iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
        let top = if max <= 0.0 { 1.0 } else { max };
        let n = values.len().max(1) as f64;
        let slot = (W - LEFT) / n;
        let mut svg = format!(
            r#"<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {W} {H}" width="100%" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>"#
        );
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" y1="{y}" x2="{W}" y2="{y}" stroke="#d1d9e0"/><text x="{x}" y="12" font-size="10" text-anchor="end" fill="#59636e">{top}</text><text x="{x}" y="{y}" font-size="10" text-anchor="end" fill="#59636e">0</text><text class="unit" x="{ux}" y="12" font-size="10" fill="#59636e">{unit}</text>"##,
            ux = LEFT + 4.0,
            y = H - BOTTOM,
            x = LEFT - 4.0,
            top = round1(top),
        ));
        for (i, (w, v)) in self.weeks.iter().zip(&values).enumerate() {
            let x = LEFT + i as f64 * slot + slot * 0.15;
            let label_every = ((n / 8.0).ceil() as usize).max(1);
            if i % label_every == 0 {
                svg.push_str(&format!(
                    r##"<text x="{lx}" y="{ly}" font-size="9" text-anchor="middle" fill="#59636e">{d}</text>"##,
                    lx = x + slot * 0.35,
                    ly = H - BOTTOM + 14.0,
                    d = w.week.format("%b %d"),
                ));
            }
            let Some(v) = v else { continue };
            let h = (v / top) * (H - BOTTOM - 16.0);
            svg.push_str(&format!(
                r##"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{h:.1}" fill="#0969da"><title>week of {d}: {v} {unit}</title></rect>"##,
                y = H - BOTTOM - h,
                bw = slot * 0.7,
                d = w.week,
            ));
        }
        svg.push_str("</svg>");
        svg
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportHtml {
    viewer: Viewer,
    api_url: String,
    page: super::report::ReportPage,
}

/// The repository's weekly report.
pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let result = async {
        Ok(ReportHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page: super::report::report(&s.pool, &repo_name(&owner, &name), &viewer).await?,
        })
    }
    .await;
    super::pages::respond(&viewer, result)
}

/// The report's weekly table as a CSV download.
pub async fn csv(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    match super::report::report(&s.pool, &repo_name(&owner, &name), &viewer).await {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{owner}-{name}-report.csv\""),
                ),
            ],
            page.csv(),
        )
            .into_response(),
        Err(err) => super::pages::error_page(&viewer, err),
    }
}

pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    super::api::json(
        async { super::report::report(&s.pool, &repo_name(&owner, &name), &viewer).await }.await,
    )
}
