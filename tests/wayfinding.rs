//! Pages a product manager lives in (issue 15): findings that explain themselves, the exact
//! bytes of every entry, acknowledged findings shown as such, an account page and search, the
//! rules in words, decision filters in words.

mod common;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{ADMIN_TOKEN, TestServer};

async fn text(server: &TestServer, path: &str, token: Option<&str>) -> (u16, String) {
    let r = server.get(path, token).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn json_of(server: &TestServer, path: &str, token: Option<&str>) -> Value {
    let r = server.get(path, token).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// The record URL of the story's finding about PR 42 (merged over rev-sam's change request).
async fn pr42_finding(server: &TestServer) -> String {
    let findings = json_of(
        server,
        "/api/findings?rule=merged-with-changes-requested",
        None,
    )
    .await;
    findings["findings"][0]["record_url"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_findings_permalink_explains_the_rule_the_pull_request_and_its_evidence() {
    let (_db, server) = common::judged_story_server().await;
    let url = pr42_finding(&server).await;
    let (status, page) = text(&server, &url, None).await;
    assert_eq!(status, 200);
    // The rule in words: its name, what it checks, why it matters; the id beside it.
    assert!(
        page.contains("Finding: Merged over a change request"),
        "{page}"
    );
    assert!(page.contains("a change request was still outstanding at merge"));
    assert!(page.contains("Why it matters"));
    assert!(page.contains("<code class=\"rule-id\">merged-with-changes-requested</code>"));
    assert!(page.contains("href=\"/rules#merged-with-changes-requested\""));
    // The pull request, linked, with its title.
    assert!(
        page.contains("id=\"finding-pr\" href=\"/acme/storefront/pull/42\""),
        "{page}"
    );
    // Each evidence record in words, linked to its permalink.
    assert!(
        page.contains("href=\"/records/acme/7\">rev-sam requested changes"),
        "{page}"
    );
    assert!(
        page.contains("href=\"/records/acme/9\">dev-lena merged"),
        "{page}"
    );
    assert!(page.contains("id=\"finding-status\">open</span>"));
    // verdict wrote it: it does not claim to be GitHub's.
    assert!(!page.contains("as GitHub sent it"), "{page}");
    assert!(page.contains("exactly as verdict wrote it"));
    assert!(!page.contains("yields no decision record"));
    // Anonymous visitors get no form; an operator does.
    assert!(!page.contains("Append acknowledgement"));
    let (_, as_operator) = text(&server, &url, Some(ADMIN_TOKEN)).await;
    assert!(as_operator.contains("Append acknowledgement"));
    assert!(as_operator.contains(&format!(
        "action=\"{}/acknowledge\"",
        url.replace("/records/", "/findings/")
    )));
    // The proof part stays below.
    assert!(page.contains("Merkle inclusion proof"));
    // The JSON says the same.
    let record = json_of(&server, &format!("/api{url}"), None).await;
    let finding = &record["written"]["finding"];
    assert_eq!(finding["rule"]["name"], "Merged over a change request");
    assert_eq!(finding["pull_request"]["url"], "/acme/storefront/pull/42");
    assert_eq!(finding["evidence"][0]["url"], "/records/acme/7");
    // A delivery is GitHub's, and says so.
    let (_, delivery) = text(&server, "/records/acme/7", None).await;
    assert!(delivery.contains("exactly as GitHub sent it"));
    assert!(delivery.contains("formatted for reading (not the exact bytes)"));
    server.shutdown().await;
}

#[tokio::test]
async fn every_entrys_body_downloads_byte_for_byte() {
    let (_db, server) = common::judged_story_server().await;
    let finding = pr42_finding(&server).await;
    for url in ["/records/acme/3".to_string(), finding] {
        let record = json_of(&server, &format!("/api{url}"), None).await;
        assert_eq!(record["body_url"], format!("{url}/body"));
        let r = server.get(&format!("{url}/body"), None).await;
        assert_eq!(r.status(), 200);
        let disposition = r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        let seq = url.rsplit('/').next().unwrap();
        assert_eq!(
            disposition,
            format!("attachment; filename=\"acme-{seq}.json\"")
        );
        let digest = r.headers()["repr-digest"].to_str().unwrap().to_string();
        let bytes = r.bytes().await.unwrap();
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!(sha, record["body_sha256"].as_str().unwrap(), "{url}");
        assert_eq!(bytes.len() as u64, record["body_bytes"].as_u64().unwrap());
        use base64::Engine;
        assert_eq!(
            digest,
            format!(
                "sha-256=:{}:",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes))
            )
        );
    }
    // The README's step: the proof and the body from the page, checked offline.
    server.checkpoint_at_least("acme", 4).await;
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("acme-3.tlog-proof");
    let body = dir.path().join("acme-3.json");
    for (path, file) in [
        ("/records/acme/3/proof", &proof),
        ("/records/acme/3/body", &body),
    ] {
        let r = server.get(path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        std::fs::write(file, r.bytes().await.unwrap()).unwrap();
    }
    let key = server.signer.verifier_key("acme");
    let (ok, out) = common::verdict_cli(
        &[
            "verify-proof",
            proof.to_str().unwrap(),
            "--key",
            &key,
            "--body",
            body.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}");
    let missing = server.get("/records/acme/9999/body", None).await;
    assert_eq!(missing.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn acknowledged_findings_show_as_such_on_pull_and_feature_pages_and_the_api() {
    let (db, server) = common::judged_story_server().await;
    let url = pr42_finding(&server).await;
    let created = server
        .client
        .post(format!(
            "{}/api{}/acknowledgements",
            server.base,
            url.replace("/records/", "/findings/")
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"by": "Priya", "note": "hotfix, reviewed after merge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let receipt: Value = created.json().await.unwrap();
    let pool = db.app_pool().await;
    let feature = "/api/acme/storefront/features/issue-41";
    let mut totals = Value::Null;
    for _ in 0..200 {
        common::project_all(&pool).await;
        totals = json_of(&server, feature, None).await["totals"].clone();
        if totals["findings_acknowledged"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(totals["findings"], 3);
    assert_eq!(totals["findings_acknowledged"], 1, "{totals}");
    let (_, page) = text(&server, "/acme/storefront/features/issue-41", None).await;
    // The card: "3 findings, 1 acknowledged", not red once all open ones are answered.
    assert!(page.contains("<b>3</b>findings, 1 acknowledged"), "{page}");
    let (_, pull) = text(&server, "/acme/storefront/pull/42", None).await;
    assert!(pull.contains("finding sev-high acknowledged"), "{pull}");
    assert!(
        pull.contains("by Priya: hotfix, reviewed after merge"),
        "{pull}"
    );
    let api = json_of(&server, "/api/acme/storefront/pull/42", None).await;
    assert_eq!(
        api["pull"]["findings"][0]["acknowledgements"][0]["by"],
        "Priya"
    );
    // The finding's own page says so, and the acknowledgement's page explains itself.
    let (_, finding) = text(&server, &url, None).await;
    assert!(
        finding.contains("id=\"finding-status\">acknowledged</span>"),
        "{finding}"
    );
    let (_, ack) = text(&server, receipt["record_url"].as_str().unwrap(), None).await;
    assert!(ack.contains("<b>Priya</b> acknowledged"), "{ack}");
    assert!(ack.contains(&format!(
        "href=\"{url}\">a finding: Merged over a change request"
    )));
    assert!(ack.contains("with the operator's admin token"));
    // The findings list narrowed to the feature, and to open ones.
    let open = json_of(
        &server,
        "/api/findings?repo=acme/storefront&feature=issue-41&acknowledged=no",
        None,
    )
    .await;
    assert_eq!(open["total"], 2);
    let none = json_of(
        &server,
        "/api/findings?repo=acme/storefront&feature=no-such-feature",
        None,
    )
    .await;
    assert_eq!(none["total"], 0);
    assert_eq!(
        server
            .get("/api/findings?feature=issue-41", None)
            .await
            .status(),
        400
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_account_page_and_the_search_lead_to_features_and_pull_requests() {
    let (_db, server) = common::judged_story_server().await;
    // Every breadcrumb resolves: /acme lists its repositories and features.
    let (status, account) = text(&server, "/acme", None).await;
    assert_eq!(status, 200, "{account}");
    assert!(account.contains("href=\"/acme/storefront\""));
    assert!(account.contains("href=\"/acme/storefront/features/issue-41\">#41 One-click checkout"));
    let api = json_of(&server, "/api/acme", None).await;
    assert_eq!(api["features"][0]["key"], "issue-41");
    assert_eq!(server.get("/nobody-here", None).await.status(), 404);
    // The feature page's breadcrumb names the account page.
    let (_, feature) = text(&server, "/acme/storefront/features/issue-41", None).await;
    assert!(feature.contains("<a href=\"/acme\">acme</a>"));
    // GitHub links: the issue, and every review, comment, commit and merge of the timeline.
    assert!(feature.contains("href=\"https://github.com/acme/storefront/issues/41\""));
    let on_github: Vec<&str> = feature
        .split("class=\"on-github\" href=\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
        .collect();
    assert_eq!(
        on_github.len(),
        verdict::story::STORY_ORDER.len(),
        "{on_github:?}"
    );
    assert!(
        on_github
            .iter()
            .all(|u| u.starts_with("https://github.com/acme/storefront/"))
    );
    assert!(
        on_github.iter().any(|u| u.contains("#pullrequestreview-")),
        "{on_github:?}"
    );
    // Home: a search box and the recently active features.
    let (_, home) = text(&server, "/", None).await;
    assert!(home.contains("<input type=\"search\" name=\"q\""));
    assert!(home.contains("id=\"recent-features\""));
    assert!(home.contains("One-click checkout"));
    // Search by title word, by number, by feature key, by person.
    let search = |q: &'static str| {
        let server = &server;
        async move {
            let mut url = url::Url::parse("http://x/api/search").unwrap();
            url.query_pairs_mut().append_pair("q", q);
            json_of(
                server,
                &format!("/api/search?{}", url.query().unwrap()),
                None,
            )
            .await
        }
    };
    let hits = search("checkout").await;
    assert_eq!(hits["features"][0]["key"], "issue-41", "{hits}");
    let numbers = |v: &Value| -> Vec<i64> {
        v["pull_requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["number"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(numbers(&search("#43").await), [43]);
    assert_eq!(search("issue-41").await["features"][0]["key"], "issue-41");
    let by_sam = numbers(&search("@rev-sam").await);
    assert!(by_sam.contains(&42) && by_sam.contains(&43), "{by_sam:?}");
    assert!(
        numbers(&search("%").await).is_empty(),
        "LIKE wildcards are literal"
    );
    let (_, page) = text(&server, "/?q=checkout", None).await;
    assert!(page.contains("id=\"search-results\""));
    assert!(page.contains("href=\"/acme/storefront/features/issue-41\""));
    assert_eq!(server.get("/api/search", None).await.status(), 400);
    server.shutdown().await;
}

#[tokio::test]
async fn rules_have_a_page_and_names_in_words_everywhere() {
    let (_db, server) = common::judged_story_server().await;
    let (status, page) = text(&server, "/rules", None).await;
    assert_eq!(status, 200);
    for rule in verdict::feedback::rules::RULES {
        assert!(page.contains(&format!("id=\"{}\"", rule.id)), "{}", rule.id);
        assert!(page.contains(rule.name), "{}", rule.name);
        // As the page escapes it (an apostrophe is &#39;).
        let why = rule.why.replace('\'', "&#39;");
        assert!(page.contains(&why), "{why}");
    }
    let api = json_of(&server, "/api/rules", None).await;
    assert_eq!(api["rules"][0]["setting"]["repositories"], json!(["*/*"]));
    // Findings and PR pages show the rule's name, with the id beside it.
    let (_, findings) = text(&server, "/findings", None).await;
    assert!(findings.contains(
        "Approval was for an older commit</a> <code class=\"rule-id\">stale-approval</code>"
    ));
    let (_, pull) = text(&server, "/acme/storefront/pull/43", None).await;
    assert!(
        pull.contains(">Approval was for an older commit</a>"),
        "{pull}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_decision_filter_speaks_in_words_without_duplicates() {
    let (_db, server) = common::judged_story_server().await;
    let (_, page) = text(&server, "/acme/storefront/features/issue-41", None).await;
    let select = &page[page.find("<select name=\"kind\">").unwrap()..];
    let select = &select[..select.find("</select>").unwrap()];
    let labels: Vec<&str> = select
        .split("<option")
        .skip(2)
        .map(|o| &o[o.find('>').unwrap() + 1..o.find("</option>").unwrap()])
        .collect();
    let mut unique = labels.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), labels.len(), "{labels:?}");
    assert!(
        labels.contains(&"Approvals") && labels.contains(&"Merges"),
        "{labels:?}"
    );
    assert!(
        labels.iter().all(|l| !l.contains('.')),
        "no raw codes: {labels:?}"
    );
    // A group filters to its kinds.
    let only = |kind: &'static str| {
        let server = &server;
        async move {
            let v = json_of(
                server,
                &format!("/api/acme/storefront/features/issue-41?kind={kind}"),
                None,
            )
            .await;
            let mut kinds: Vec<String> = v["decisions"]["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_string())
                .collect();
            kinds.dedup();
            kinds
        }
    };
    assert_eq!(only("approvals").await, ["review.approved"]);
    assert_eq!(only("merges").await, ["pr.merged"]);
    let comments = only("comments").await;
    assert!(!comments.is_empty());
    assert!(
        comments.iter().all(|k| k.starts_with("comment.")
            || k.starts_with("review_comment.")
            || k.starts_with("issue.comment")),
        "{comments:?}"
    );
    // A stop word is found: "before" is in rev-omar's review.
    let found = json_of(
        &server,
        "/api/acme/storefront/features/issue-41?q=before",
        None,
    )
    .await;
    assert!(
        found["decisions"]["total"].as_i64().unwrap() >= 1,
        "{found}"
    );
    let phrase = json_of(
        &server,
        "/api/acme/storefront/features/issue-41?q=%22card%20number%20before%22",
        None,
    )
    .await;
    assert!(
        phrase["decisions"]["total"].as_i64().unwrap() >= 1,
        "{phrase}"
    );
    server.shutdown().await;
}

/// A `pull_request` `opened` delivery of PR `number` in `owner/name` with this title, branch,
/// labels and body.
fn opened(
    owner: &str,
    name: &str,
    number: i64,
    title: &str,
    branch: &str,
    labels: &[&str],
    body: &str,
) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&common::in_repository(
        &common::fixture("pull_request/opened.1.json"),
        owner,
        name,
    ))
    .unwrap();
    v["number"] = json!(number);
    v["pull_request"]["number"] = json!(number);
    v["pull_request"]["title"] = json!(title);
    v["pull_request"]["body"] = json!(body);
    v["pull_request"]["head"]["ref"] = json!(branch);
    v["pull_request"]["labels"] = json!(
        labels
            .iter()
            .map(|l| json!({"name": l}))
            .collect::<Vec<_>>()
    );
    v["pull_request"]["html_url"] =
        json!(format!("https://github.com/{owner}/{name}/pull/{number}"));
    serde_json::to_vec(&v).unwrap()
}

/// Polls `path` (JSON) until `done` holds, while the server's projector catches up.
async fn until(server: &TestServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = server.get(path, None).await;
        if r.status() == 200 {
            last = r.json().await.unwrap();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never got there: {last}");
}

fn numbers(feature: &Value) -> Vec<(String, i64)> {
    feature["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["repo"].as_str().unwrap().to_string(),
                p["number"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_feature_spans_repositories_and_tracker_keys_make_features() {
    let db = common::TestDb::new().await;
    let server = db
        .start(common::ServerOptions {
            features: Some(verdict::projections::features::FeatureLinking {
                label_prefix: "feature:".into(),
                key_pattern: Some(regex::Regex::new("(?i)[A-Z][A-Z0-9]+-[0-9]+").unwrap()),
                key_url: Some("https://linear.app/acme/issue/{key}".into()),
            }),
            ..Default::default()
        })
        .await;
    let deliveries = [
        // One label in a frontend and a backend repository of one account.
        opened(
            "octo-org",
            "web",
            1,
            "Checkout button",
            "checkout-button",
            &["feature: checkout"],
            "",
        ),
        opened(
            "octo-org",
            "api",
            2,
            "Checkout endpoint",
            "checkout-api",
            &["feature: checkout"],
            "",
        ),
        // A backend PR that closes the frontend's issue joins that issue's feature.
        opened(
            "octo-org",
            "api",
            3,
            "Card validation",
            "validate",
            &[],
            "Closes octo-org/web#40",
        ),
        // Tracker keys, in a title and (lower-case) in a branch name.
        opened(
            "octo-org",
            "web",
            4,
            "PAY-12 card vault form",
            "vault-form",
            &[],
            "",
        ),
        opened(
            "octo-org",
            "api",
            5,
            "Card vault storage",
            "pay-12-storage",
            &[],
            "",
        ),
    ];
    for (i, body) in deliveries.iter().enumerate() {
        let r = server
            .deliver("pull_request", &format!("span-{i}"), body)
            .await;
        assert_eq!(r.status(), 201);
    }
    // The account-wide feature has both repositories' pull requests.
    let checkout = until(&server, "/api/octo-org/features/checkout", |v| {
        v["pulls"].as_array().is_some_and(|p| p.len() == 2)
    })
    .await;
    assert_eq!(
        numbers(&checkout),
        [
            ("octo-org/api".to_string(), 2),
            ("octo-org/web".to_string(), 1)
        ]
    );
    assert_eq!(
        checkout["repositories"],
        json!(["octo-org/api", "octo-org/web"])
    );
    assert_eq!(checkout["account_wide"], true);
    // Each repository's page stays, and points at the account-wide one.
    let web = json_of(&server, "/api/octo-org/web/features/checkout", None).await;
    assert_eq!(numbers(&web), [("octo-org/web".to_string(), 1)]);
    assert_eq!(web["across_url"], "/octo-org/features/checkout");
    let (status, page) = text(&server, "/octo-org/features/checkout", None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("href=\"/octo-org/web/pull/1\"")
            && page.contains("href=\"/octo-org/api/pull/2\"")
    );
    // The cross-repository closing keyword: issue 40 of web has the api PR.
    let issue = until(&server, "/api/octo-org/web/features/issue-40", |v| {
        v["pulls"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    assert_eq!(numbers(&issue), [("octo-org/api".to_string(), 3)]);
    // The tracker key: one feature PAY-12 across both repositories, linked to the tracker.
    let pay = until(&server, "/api/octo-org/features/PAY-12", |v| {
        v["pulls"].as_array().is_some_and(|p| p.len() == 2)
    })
    .await;
    assert_eq!(
        numbers(&pay),
        [
            ("octo-org/api".to_string(), 5),
            ("octo-org/web".to_string(), 4)
        ]
    );
    assert_eq!(pay["tracker_url"], "https://linear.app/acme/issue/PAY-12");
    assert_eq!(pay["sources"], json!(["tracker"]));
    let (_, page) = text(&server, "/octo-org/web/features/PAY-12", None).await;
    assert!(
        page.contains("id=\"tracker\" href=\"https://linear.app/acme/issue/PAY-12\""),
        "{page}"
    );
    // The account page lists the features of both repositories.
    let account = json_of(&server, "/api/octo-org", None).await;
    let keys: Vec<&str> = account["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"PAY-12") && keys.contains(&"checkout"),
        "{keys:?}"
    );
    assert_eq!(
        server
            .get("/octo-org/features/nothing", None)
            .await
            .status(),
        404
    );
    server.shutdown().await;
}
