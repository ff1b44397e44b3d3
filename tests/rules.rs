//! Each accountability rule on a story of its own, built from GitHub's real payloads and
//! delivered through the signed webhook endpoint; the feature story (tests/pages.rs,
//! tests/feedback.rs) covers stale-approval, merged-with-changes-requested and
//! dismissed-then-merged.

mod common;

use std::time::Duration;

use common::{SECRET, TestDb};

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_fires_on_its_own_story_and_a_clean_pr_gets_nothing() {
    let db = TestDb::new().await;
    let server = db.server_with_judge(&[SECRET]).await;
    let stories = verdict::story::rule_stories("rules");
    for (_, _, deliveries) in &stories {
        for d in deliveries {
            let r = server.deliver(d.event, &d.delivery_id, &d.body).await;
            assert!(r.status().is_success(), "{}: {}", d.delivery_id, r.status());
        }
    }
    let pool = db.app_pool().await;
    // Wait until the judge has seen everything projected and the findings are projected.
    let mut last = -1;
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n >= 5 && n == last {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for (rule, pr, _) in &stories {
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT rule FROM findings WHERE repo = $1 AND pr_number IS NOT DISTINCT FROM $2
              ORDER BY seq",
        )
        .bind(verdict::story::REPO)
        .bind(pr)
        .fetch_all(&pool)
        .await
        .unwrap();
        if rule.is_empty() {
            assert!(found.is_empty(), "the clean PR {pr:?} got {found:?}");
        } else {
            assert!(
                found.iter().any(|f| f == rule),
                "{rule} did not fire on its story (PR {pr:?}); found {found:?}"
            );
        }
    }
    server.shutdown().await;
}
