//! The decision-history pages and their JSON API, end to end: signed deliveries of the
//! feature story go through HTTP into the log, the projector derives the records, and the
//! pages and API are read back over HTTP.

mod common;

use common::{ADMIN_TOKEN, TestDb, TestServer, project_all};
use serde_json::{Value, json};
use verdict::story::{self, STORY_ORDER};

async fn story_server() -> (TestDb, TestServer) {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    project_all(&db.app_pool().await).await;
    (db, server)
}

async fn html(server: &TestServer, path: &str, token: Option<&str>) -> (u16, String) {
    let r = server.get(path, token).await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn api(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let r = server.get(path, token).await;
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json",
        "{path}"
    );
    (status, r.json().await.unwrap())
}

/// The decision kinds of a page's timeline, in page order (from the `data-kind` attributes).
fn timeline_kinds(html: &str) -> Vec<String> {
    html.split("data-kind=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// Every tag on the page that could run script: `<script>` and any `on…=` attribute.
fn script_vectors(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices('<') {
        let tag = &lower[i..lower[i..]
            .find('>')
            .map(|e| i + e + 1)
            .unwrap_or(lower.len())];
        let name_ok = tag[1..].starts_with(|c: char| c.is_ascii_alphabetic());
        if !name_ok {
            continue;
        }
        let has_handler = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .skip(1)
            .any(|attr| attr.starts_with("on") && attr.contains('='));
        if tag.starts_with("<script")
            || has_handler
            || tag.contains("javascript:")
            || tag.starts_with("<iframe")
        {
            found.push(tag.to_string());
        }
    }
    found
}

#[tokio::test]
async fn the_feature_page_tells_the_story_in_order_with_its_review_summary() {
    let (db, server) = common::judged_story_server().await;
    let path = format!("/{}/features/{}", story::REPO, story::FEATURE_KEY);

    let (status, page) = html(&server, &path, None).await;
    assert_eq!(status, 200, "{page}");
    let expected: Vec<&str> = STORY_ORDER.iter().map(|(k, _)| *k).collect();
    assert_eq!(timeline_kinds(&page), expected);
    assert!(page.contains(story::FEATURE_TITLE));
    assert!(
        page.contains("stale approval"),
        "the stale approval on #43 is called out"
    );
    assert!(page.contains("Please validate the card number <strong>before</strong> submitting."));
    // Every decision links to its log entry.
    for seq in 0..17 {
        assert!(
            page.contains(&format!("/records/acme/{seq}")),
            "record {seq} is linked"
        );
    }

    let (status, json) = api(&server, &format!("/api{path}"), None).await;
    assert_eq!(status, 200);
    let got: Vec<(String, Option<i64>)> = json["decisions"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["pr_number"].as_i64(),
            )
        })
        .collect();
    let want: Vec<(String, Option<i64>)> = STORY_ORDER
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        json["totals"],
        json!({"pull_requests": 2, "merged": 2, "open": 0, "stale_approvals": 1,
               "outstanding_change_requests": 1, "findings": 3,
               "findings_acknowledged": 0})
    );
    let pulls = json["pulls"].as_array().unwrap();
    let pr42 = &pulls[0];
    let pr43 = &pulls[1];
    assert_eq!(pr42["number"], 42);
    assert_eq!(pr42["merged_by"], "dev-lena");
    assert_eq!(
        pr42["review"]["outstanding_change_requests"][0]["reviewer"],
        "rev-sam"
    );
    assert_eq!(pr42["review"]["approvals"][0]["reviewer"], "rev-omar");
    assert_eq!(pr42["review"]["approvals"][0]["stale"], false);
    assert_eq!(
        pr42["review"]["approvals"][0]["commit_sha"],
        pr42["head_sha"]
    );
    assert_eq!(pr43["merged_by"], "dev-kai");
    assert_eq!(pr43["review"]["approvals"][0]["stale"], true);
    assert_ne!(
        pr43["review"]["approvals"][0]["commit_sha"],
        pr43["head_sha"]
    );
    assert_eq!(pr43["review"]["dismissed"], json!(["rev-sam"]));
    assert_eq!(pr43["review"]["outstanding_change_requests"], json!([]));
    // The accountability rules' findings, each citing the records it rests on.
    let rules = |pr: &Value| -> Vec<String> {
        pr["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(rules(pr42), ["merged-with-changes-requested"]);
    assert_eq!(rules(pr43), ["stale-approval", "dismissed-then-merged"]);
    assert_eq!(
        pr42["findings"][0]["evidence"],
        json!(["/records/acme/7", "/records/acme/9"]),
        "rev-sam's change request and the merge"
    );
    assert!(page.contains("data-rule=\"stale-approval\""));
    assert!(page.contains("data-rule=\"merged-with-changes-requested\""));
    // Findings are log entries of their own kind, chained after the story's 17 deliveries,
    // each linked from the page; judging again appends nothing.
    let finding_url = pr42["findings"][0]["record_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(page.contains(&format!("href=\"{finding_url}\"")));
    let (_, record) = api(&server, &format!("/api{finding_url}"), None).await;
    assert_eq!(record["kind"], "verdict-finding");
    assert_eq!(record["event"], "merged-with-changes-requested");
    assert!(record["seq"].as_i64().unwrap() >= 17);
    assert_eq!(record["entry_intact"], true);
    let judge = verdict::feedback::judge::Judge::new(
        db.app_pool().await,
        verdict::log::Sequencer::new(db.app_pool().await),
        verdict::feedback::messages::Outputs::none(),
    );
    sqlx::query("DELETE FROM judge_cursors")
        .execute(&db.app_pool().await)
        .await
        .unwrap();
    assert_eq!(
        judge.catch_up().await.unwrap(),
        0,
        "the same findings are not appended twice"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn index_repository_pull_and_record_pages_answer_with_their_data() {
    let (_db, server) = story_server().await;

    let (status, page) = html(&server, "/", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/acme/storefront\""), "{page}");
    let (_, index) = api(&server, "/api/", None).await;
    assert_eq!(index["accounts"][0]["account"], "acme");
    assert_eq!(index["accounts"][0]["log_size"], 17);

    let (status, page) = html(&server, "/acme/storefront", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/acme/storefront/features/issue-41\""));
    let (_, repo) = api(&server, "/api/acme/storefront", None).await;
    assert_eq!(repo["decisions"]["total"], 17);
    assert_eq!(repo["decisions"]["newest_first"], true);
    assert_eq!(repo["decisions"]["decisions"][0]["kind"], "issue.closed");
    assert_eq!(repo["recent_pull_requests"].as_array().unwrap().len(), 2);

    let (status, page) = html(&server, "/acme/storefront/pull/43", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        timeline_kinds(&page),
        [
            "pr.opened",
            "review.approved",
            "pr.synchronize",
            "review.changes_requested",
            "review.dismissed",
            "pr.merged"
        ]
    );
    assert!(
        page.contains("href=\"/acme/storefront/features/issue-41\""),
        "PR links its feature"
    );

    let (status, page) = html(&server, "/records/acme/3", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("entry verifies"));
    assert!(
        page.contains("chain verified from entry 0 through 16"),
        "{page}"
    );
    assert!(page.contains("<details>"), "the raw delivery is collapsed");
    let (_, record) = api(&server, "/api/records/acme/3", None).await;
    assert_eq!(record["event"], "pull_request_review");
    assert_eq!(record["entry_intact"], true);
    assert_eq!(record["links_to_previous"], true);
    assert_eq!(record["chain"]["covers_this_entry"], true);
    assert_eq!(record["entry_hash"], record["recomputed_entry_hash"]);
    assert_eq!(record["decisions"][0]["kind"], "review.changes_requested");
    let sent = &verdict::story::feature_story("test")[3];
    assert_eq!(
        record["body"].as_str().unwrap().as_bytes(),
        &sent.body[..],
        "body kept exactly"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_record_page_shows_when_its_entry_no_longer_verifies() {
    let (db, server) = story_server().await;
    let admin = db.admin_pool().await;
    let mut conn = admin.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE log_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), 'LGTM', 'LGTN'), 'UTF8') WHERE seq = 11")
        .execute(&mut *conn)
        .await
        .unwrap();
    let (_, record) = api(&server, "/api/records/acme/11", None).await;
    assert_eq!(record["entry_intact"], false);
    let (_, page) = html(&server, "/records/acme/11", None).await;
    assert!(page.contains("entry does not verify"), "{page}");
    server.shutdown().await;
}

#[tokio::test]
async fn filters_search_and_pagination() {
    let (db, server) = story_server().await;
    let base = "/api/acme/storefront/features/issue-41";
    let kinds = |v: &Value| -> Vec<String> {
        v["decisions"]["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_string())
            .collect()
    };

    let (_, v) = api(&server, &format!("{base}?actor=rev-sam"), None).await;
    assert_eq!(
        kinds(&v),
        [
            "review.changes_requested",
            "review.changes_requested",
            "review.dismissed"
        ]
    );
    let (_, v) = api(&server, &format!("{base}?kind=review.approved"), None).await;
    assert_eq!(kinds(&v), ["review.approved", "review.approved"]);
    let (_, v) = api(&server, &format!("{base}?kind=pr"), None).await;
    assert!(
        kinds(&v).iter().all(|k| k.starts_with("pr.")) && kinds(&v).len() == 7,
        "{:?}",
        kinds(&v)
    );
    let (_, v) = api(
        &server,
        &format!("{base}?from=2026-11-03&to=2026-11-03"),
        None,
    )
    .await;
    assert_eq!(
        v["decisions"]["total"],
        9,
        "the whole of 3 November, nothing of the 4th: {:?}",
        kinds(&v)
    );
    let (_, v) = api(&server, &format!("{base}?q=feature%20flags"), None).await;
    assert_eq!(
        kinds(&v),
        ["review.changes_requested"],
        "stemmed full-text match"
    );
    assert_eq!(v["decisions"]["decisions"][0]["actor"], "rev-sam");
    let (_, page) = html(&server, "/acme/storefront/features/issue-41?q=friday", None).await;
    assert_eq!(timeline_kinds(&page), ["comment.created"]);

    // 60 more comments on #42: 69 decisions, two pages of 50.
    let template = &story_comment();
    for i in 0..60 {
        let mut body: Value = serde_json::from_slice(&template.body).unwrap();
        body["comment"]["body"] = json!(format!("note {i}"));
        body["comment"]["id"] = json!(5_000_000 + i);
        body["comment"]["created_at"] = json!(format!("2026-11-05T10:{:02}:00Z", i));
        server
            .deliver(
                "issue_comment",
                &format!("extra-{i}"),
                &serde_json::to_vec(&body).unwrap(),
            )
            .await;
    }
    project_all(&db.app_pool().await).await;
    let (_, p1) = api(&server, "/api/acme/storefront/pull/42", None).await;
    let (_, p2) = api(&server, "/api/acme/storefront/pull/42?page=2", None).await;
    let (_, p3) = api(&server, "/api/acme/storefront/pull/42?page=3", None).await;
    assert_eq!(p1["decisions"]["total"], 69);
    assert_eq!(p1["decisions"]["decisions"].as_array().unwrap().len(), 50);
    assert_eq!(p2["decisions"]["decisions"].as_array().unwrap().len(), 19);
    assert_eq!(
        p2["decisions"]["decisions"][18]["body"], "note 59",
        "oldest first, newest last"
    );
    assert_eq!(p3["decisions"]["decisions"].as_array().unwrap().len(), 0);
    assert_eq!(p3["decisions"]["total"], 69, "past the end still counts");
    let (_, page) = html(&server, "/acme/storefront/pull/42?kind=comment", None).await;
    let next = "rel=\"next\" href=\"/acme/storefront/pull/42?kind=comment&#38;page=2\"";
    assert!(
        page.contains(next) || page.contains(&next.replace("&#38;", "&amp;")),
        "{page}"
    );
    server.shutdown().await;
}

/// The story's one PR comment (maria-pm's, on #42).
fn story_comment() -> verdict::story::Delivery {
    verdict::story::feature_story("test")
        .into_iter()
        .find(|d| d.event == "issue_comment")
        .unwrap()
}

#[tokio::test]
async fn unknown_things_are_404_and_malformed_parameters_400_with_the_reason() {
    let (_db, server) = story_server().await;
    let cases: &[(&str, u16, &str)] = &[
        (
            "/nobody/nothing",
            404,
            "no record of a repository named nobody/nothing",
        ),
        ("/acme/storefront/pull/999", 404, "pull request #999"),
        (
            "/acme/storefront/features/issue-999",
            404,
            "no feature \"issue-999\"",
        ),
        ("/records/acme/17", 404, "has no entry 17"),
        ("/records/nobody/0", 404, "log \"nobody\" has no entry 0"),
        ("/a/b/c/d/e", 404, "/a/b/c/d/e; "),
        (
            "/acme/storefront/pull/abc",
            400,
            "not a pull request number",
        ),
        ("/records/acme/-1", 400, "not a log position"),
        ("/acme/storefront?page=0", 400, "page="),
        (
            "/acme/storefront?from=yesterday",
            400,
            "from=\"yesterday\" is not a date",
        ),
        (
            "/acme/storefront?kind=review.lgtm",
            400,
            "kind=\"review.lgtm\"",
        ),
        (
            "/acme/storefront?from=2026-02-02&to=2026-01-01",
            400,
            "date range is empty",
        ),
    ];
    for (path, status, reason) in cases {
        let (got, page) = html(&server, path, None).await;
        assert_eq!(got, *status, "{path}: {page}");
        assert!(
            page.contains(&reason.replace('"', "&#34;")) || page.contains(reason),
            "{path}: {page}"
        );
        let (got, json) = api(&server, &format!("/api{path}"), None).await;
        assert_eq!(got, *status, "/api{path}");
        assert!(
            json["error"].as_str().unwrap().contains(reason),
            "/api{path}: {json}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn private_repositories_are_shown_to_the_operator_only() {
    let (db, server) = story_server().await;
    for d in verdict::story::private_story("private") {
        assert!(
            server
                .deliver(d.event, &d.delivery_id, &d.body)
                .await
                .status()
                .is_success()
        );
    }
    project_all(&db.app_pool().await).await;
    // Entry 17 is the private story's first delivery.
    let private_paths = [
        "/acme/billing",
        "/acme/billing/pull/42",
        "/acme/billing/features/issue-41",
        "/records/acme/17",
    ];
    for path in private_paths {
        assert_eq!(html(&server, path, None).await.0, 404, "{path} anonymous");
        assert_eq!(
            api(&server, &format!("/api{path}"), None).await.0,
            404,
            "/api{path} anonymous"
        );
        assert_eq!(
            html(&server, path, Some(ADMIN_TOKEN)).await.0,
            200,
            "{path} operator"
        );
        assert_eq!(
            api(&server, &format!("/api{path}"), Some(ADMIN_TOKEN))
                .await
                .0,
            200
        );
        let (status, body) = html(&server, path, Some("wrong-token")).await;
        assert_eq!(status, 401, "{path} wrong token");
        assert!(body.contains("wrong operator token"));
    }
    let (_, page) = html(&server, "/", None).await;
    assert!(!page.contains("acme/billing"));
    let (_, page) = html(&server, "/", Some(ADMIN_TOKEN)).await;
    assert!(page.contains("acme/billing"));

    // The cookie form: a wrong token is refused, the right one sets a cookie that works.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let wrong = no_redirect
        .post(format!("{}/operator", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = no_redirect
        .post(format!("{}/operator", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains(ADMIN_TOKEN),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = no_redirect
        .get(format!("{}/acme/billing/features/issue-41", server.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    let forged = no_redirect
        .get(format!("{}/acme/billing", server.base))
        .header("cookie", "verdict_operator=00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn no_script_from_a_pull_request_reaches_a_readers_browser() {
    let (db, server) = story_server().await;
    // Titles, logins, labels, bodies and comments all carry attacks.
    let attack = "<script>alert('t')</script><img src=x onerror=alert(1)>";
    let mut opened: Value =
        serde_json::from_slice(&verdict::story::feature_story("test")[1].body).unwrap();
    opened["pull_request"]["number"] = json!(77);
    opened["number"] = json!(77);
    opened["pull_request"]["title"] = json!(format!("Fix {attack}"));
    opened["pull_request"]["body"] = json!(format!("[x](javascript:alert(1)) {attack} Closes #41"));
    opened["pull_request"]["updated_at"] = json!("2026-11-06T00:00:00Z");
    opened["sender"]["login"] = json!("\"><svg onload=alert(2)>");
    server
        .deliver(
            "pull_request",
            "xss-1",
            &serde_json::to_vec(&opened).unwrap(),
        )
        .await;
    let mut comment: Value = serde_json::from_slice(&story_comment().body).unwrap();
    comment["comment"]["body"] = json!(
        "<a href=\"javascript:alert(3)\">docs</a> <iframe src=//evil.example></iframe> <div onclick=alert(4)>x</div>"
    );
    server
        .deliver(
            "issue_comment",
            "xss-2",
            &serde_json::to_vec(&comment).unwrap(),
        )
        .await;
    project_all(&db.app_pool().await).await;

    for path in [
        "/",
        "/acme/storefront",
        "/acme/storefront/pull/77",
        "/acme/storefront/pull/42",
        "/acme/storefront/features/issue-41",
        "/records/acme/3",
        "/records/acme/17",
        "/records/acme/18",
    ] {
        let (status, page) = html(&server, path, None).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(script_vectors(&page), Vec::<String>::new(), "{path}");
    }
    let (_, page) = html(&server, "/acme/storefront/pull/77", None).await;
    assert!(
        page.contains("Fix &#60;script&#62;") || page.contains("Fix &lt;script&gt;"),
        "title shown as text: {page}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint_and_its_answers() {
    // With the judge, so findings are in the answers too.
    let (_db, server) = common::judged_story_server().await;
    let (status, doc) = api(&server, "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let examples = [
        ("/api/", "/api/"),
        ("/api/{owner}/{repo}", "/api/acme/storefront"),
        (
            "/api/{owner}/{repo}/pull/{number}",
            "/api/acme/storefront/pull/42",
        ),
        (
            "/api/{owner}/{repo}/features/{feature}",
            "/api/acme/storefront/features/issue-41",
        ),
        ("/api/records/{account}/{seq}", "/api/records/acme/3"),
        ("/api/logs", "/api/logs"),
        ("/api/findings", "/api/findings"),
        ("/api/outbox", "/api/outbox"),
        ("/api/coverage", "/api/coverage"),
        ("/api/redactions", "/api/redactions"),
        ("/api/rules", "/api/rules"),
        ("/api/search", "/api/search?q=checkout"),
        ("/api/{owner}", "/api/acme"),
        (
            "/api/{owner}/features/{feature}",
            "/api/acme/features/issue-41",
        ),
        ("/api/{owner}/{repo}/report", "/api/acme/storefront/report"),
        (
            "/api/logs/{account}/proof/inclusion",
            "/api/logs/acme/proof/inclusion?index=3",
        ),
        (
            "/api/logs/{account}/proof/consistency",
            "/api/logs/acme/proof/consistency?from=3",
        ),
    ];
    let text_examples = [
        ("/api/logs/{account}/key", "/api/logs/acme/key"),
        (
            "/api/logs/{account}/key-rotations",
            "/api/logs/acme/key-rotations",
        ),
        (
            "/api/logs/{account}/checkpoint",
            "/api/logs/acme/checkpoint",
        ),
    ];
    server.checkpoint_at_least("acme", 17).await;
    let paths = doc["paths"].as_object().unwrap();
    let post_examples = [
        "/api/findings/{account}/{seq}/acknowledgements",
        "/api/records/{account}/{seq}/redactions",
    ];
    assert_eq!(
        paths.len(),
        examples.len() + text_examples.len() + post_examples.len(),
        "every documented path is exercised here"
    );
    // And every API route the router has is documented (the openapi document itself aside).
    let mut routed: Vec<&str> = verdict::web::route_table()
        .iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/api/") && *p != "/api/openapi.json")
        .collect();
    routed.sort();
    routed.dedup();
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort();
    assert_eq!(
        documented, routed,
        "the OpenAPI document and the router agree"
    );
    for (template, concrete) in text_examples {
        assert!(paths[template]["get"]["responses"]["200"]["content"]["text/plain"].is_object());
        let r = server.get(concrete, None).await;
        assert_eq!(r.status(), 200, "{concrete}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = r.text().await.unwrap();
        if concrete.ends_with("key-rotations") {
            assert_eq!(text, "", "the key never changed");
        } else {
            assert!(text.contains("verdict.test/acme"), "{concrete}");
        }
    }
    for (template, concrete) in examples {
        let op = &paths[template]["get"];
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        let (status, value) = api(&server, concrete, None).await;
        assert_eq!(status, 200, "{concrete}");
        conforms(&doc, schema, &value, concrete);
        if concrete == "/api/records/acme/3" {
            assert!(value["proof"].is_object(), "the record carries its proof");
        }
        if concrete.contains("/features/") {
            assert_eq!(value["totals"]["findings"], 3, "findings are checked too");
        }
    }
    // Acknowledging a finding: operators only, appended to the log, then shown with it.
    let (_, open) = api(&server, "/api/findings?acknowledged=no", None).await;
    let finding = open["findings"][0]["record_url"]
        .as_str()
        .unwrap()
        .to_string();
    let ack_url = format!(
        "{}/api{}/acknowledgements",
        server.base,
        finding.replace("/records/", "/findings/")
    );
    let ack =
        json!({"by": "Priya (release manager)", "note": "accepted: hotfix, reviewed after merge"});
    let anonymous = server
        .client
        .post(&ack_url)
        .json(&ack)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    let blank = server
        .client
        .post(&ack_url)
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"by": "Priya", "note": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status(), 400);
    let created = server
        .client
        .post(&ack_url)
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&ack)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let receipt: Value = created.json().await.unwrap();
    let post_schema = &paths[post_examples[0]]["post"]["responses"]["201"]["content"]["application/json"]
        ["schema"];
    conforms(&doc, post_schema, &receipt, "acknowledgement");
    let (_, ack_record) = api(
        &server,
        &format!("/api{}", receipt["record_url"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(ack_record["kind"], "verdict-ack");
    assert_eq!(ack_record["entry_intact"], true);
    let mut acked = Value::Null;
    for _ in 0..100 {
        let (_, v) = api(&server, "/api/findings?acknowledged=yes", None).await;
        if v["total"] == 1 {
            acked = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(acked["findings"][0]["record_url"], finding.as_str());
    assert_eq!(
        acked["findings"][0]["acknowledgements"][0]["note"],
        "accepted: hotfix, reviewed after merge"
    );
    let (_, still_open) = api(&server, "/api/findings?acknowledged=no", None).await;
    assert_eq!(still_open["total"], open["total"].as_i64().unwrap() - 1);
    conforms(
        &doc,
        &paths["/api/findings"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        &acked,
        "acknowledged findings",
    );

    // Error answers follow the Error schema.
    let (_, value) = api(&server, "/api/acme/storefront/pull/999", None).await;
    conforms(
        &doc,
        &json!({"$ref": "#/components/schemas/Error"}),
        &value,
        "error",
    );
}

/// Checks `value` against the subset of JSON Schema the document uses.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let target = doc
            .pointer(&r[1..])
            .unwrap_or_else(|| panic!("{r} resolves"));
        return conforms(doc, target, value, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
        _ => return,
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert!(types.contains(&actual), "{at}: {actual} is not {types:?}");
    if value.is_null() {
        // A nullable object that is null has no members to check.
        return;
    }
    if let Some(required) = schema["required"].as_array() {
        for k in required {
            let k = k.as_str().unwrap();
            assert!(value.get(k).is_some(), "{at}: missing {k}");
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (k, s) in props {
            if let Some(v) = obj.get(k) {
                conforms(doc, s, v, &format!("{at}.{k}"));
            }
        }
        for k in obj.keys() {
            assert!(props.contains_key(k), "{at}: {k} is not documented");
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"));
        }
    }
}

#[tokio::test]
async fn the_weekly_report_counts_findings_reviews_and_merges_with_charts_and_csv() {
    let (_db, server) = common::judged_story_server().await;
    let (status, report) = api(&server, "/api/acme/storefront/report", None).await;
    assert_eq!(status, 200);
    // The story: three findings; both PRs reviewed, both merged after an approval.
    assert_eq!(report["totals"]["findings"], 3);
    assert_eq!(report["totals"]["prs_first_reviewed"], 2);
    assert_eq!(report["totals"]["prs_merged_after_approval"], 2);
    // Both merges were flagged (PR 42 over a change request, PR 43 on a stale approval);
    // none went through cleanly.
    assert_eq!(report["totals"]["merges"], 2);
    assert_eq!(report["totals"]["merges_flagged"], 2);
    assert_eq!(report["totals"]["merges_clean"], 0);
    let weeks = report["weeks"].as_array().unwrap();
    // Findings sit in the week of the merges they judge (both story PRs merge in the week of
    // 2026-11-02), not in the week the judge ran (today, when the test runs).
    let by_week: Vec<(String, i64, i64)> = weeks
        .iter()
        .filter(|w| w["findings"].as_i64().unwrap() > 0 || w["merges"].as_i64().unwrap() > 0)
        .map(|w| {
            (
                w["week"].as_str().unwrap().to_string(),
                w["findings"].as_i64().unwrap(),
                w["merges"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_week, [("2026-11-02".to_string(), 3, 2)], "{report}");
    let reviewed: Vec<f64> = weeks
        .iter()
        .filter_map(|w| w["median_hours_to_first_review"].as_f64())
        .collect();
    assert!(
        !reviewed.is_empty() && reviewed.iter().all(|h| *h > 0.0),
        "{report}"
    );
    let page = server
        .get("/acme/storefront/report", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 3);
    assert!(
        page.contains("Median time to first review (hours)"),
        "{page}"
    );
    assert_eq!(
        page.matches("class=\"unit\"").count(),
        3,
        "every chart names its unit"
    );
    assert!(page.contains("flagged merges"), "{page}");
    assert!(page.contains("class=\"bar\""));
    let csv = server.get("/acme/storefront/report.csv", None).await;
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("week,findings,merges,merges_clean,merges_flagged,prs_first_reviewed")
    );
    assert_eq!(lines.len(), weeks.len() + 1);
    let findings_column: i64 = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(findings_column, 3);
    let missing = server.get("/acme/nothing-here/report", None).await;
    assert_eq!(missing.status(), 404);
    server.shutdown().await;
}
