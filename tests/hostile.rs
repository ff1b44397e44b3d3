//! verdict on the open internet: what an attacker can send and what it must not achieve.
//! Every case is built from GitHub's real payloads (the fixtures and the story made of them).

mod common;

use common::{ADMIN_TOKEN, TestDb, TestServer, project_all};
use serde_json::Value;
use verdict::story;

/// Everything a viewer could learn from the pages, as JSON: the feature, both PRs, the
/// findings and the outbox.
async fn observable(server: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/{}/features/{}", story::REPO, story::FEATURE_KEY),
        format!("/api/{}/pull/42", story::REPO),
        format!("/api/{}/pull/43", story::REPO),
        format!("/api/{}", story::REPO),
        "/api/findings".to_string(),
        "/api/outbox".to_string(),
    ] {
        let r = server.get(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status(), 200, "{path}");
        out.push(r.json().await.unwrap());
    }
    out
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the judge has looked at everything projected (so a finding a replay caused
/// would be there).
async fn settle(pool: &sqlx::PgPool) {
    for _ in 0..200 {
        project_all(pool).await;
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_cursors p LEFT JOIN judge_cursors j USING (log_id)
              WHERE coalesce(j.next_seq, 0) < p.next_seq",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the judge did not settle");
}

#[tokio::test]
async fn a_replayed_public_body_under_a_new_guid_and_event_changes_nothing() {
    let (db, server) = common::judged_story_server().await;
    let pool = db.app_pool().await;
    settle(&pool).await;
    let before = observable(&server).await;
    let entries = count(&pool, "log_entries").await;
    let decisions = count(&pool, "decisions").await;

    // Public record pages show every body: take the story's merge of #43 and rev-sam's change
    // request, and post them again under new GUIDs, as their own event and as other events.
    let deliveries = story::feature_story("test");
    let merge = deliveries
        .iter()
        .rfind(|d| d.event == "pull_request" && d.body.windows(8).any(|w| w == b"\"closed\""))
        .expect("the story merges");
    let change_request = deliveries
        .iter()
        .find(|d| {
            d.event == "pull_request_review"
                && d.body.windows(19).any(|w| w == b"\"changes_requested\"")
        })
        .expect("the story requests changes");
    let record = |seq: u64| format!("/api/records/{}/{seq}", story::ACCOUNT);
    for (i, (original, event)) in [
        (merge, "pull_request"),
        (merge, "pull_request_review"),
        (change_request, "pull_request_review"),
        (change_request, "pull_request"),
        (change_request, "issue_comment"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = server
            .deliver(event, &format!("replay-{i}"), &original.body)
            .await;
        assert_eq!(r.status(), 200, "a replay is answered 200");
        let receipt: Value = r.json().await.unwrap();
        let seq = receipt["replay_of"]["seq"]
            .as_u64()
            .expect("replay_of names the original");
        assert_eq!(receipt["replay_of"]["log"], story::ACCOUNT);
        // The original is the entry with that body and its real delivery id.
        let shown: Value = server
            .get(&record(seq), Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["delivery_id"], original.delivery_id.as_str());
        assert!(receipt.get("entry_hash").is_none());
    }
    settle(&pool).await;
    assert_eq!(count(&pool, "log_entries").await, entries, "nothing stored");
    assert_eq!(count(&pool, "decisions").await, decisions);
    assert_eq!(observable(&server).await, before, "no page changed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_under_another_events_name_is_kept_but_not_projected() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    // A real review payload, made unique (so it is no replay), sent as a pull_request event:
    // GitHub would never send that shape under that name.
    let review = common::variant(&common::fixture("pull_request_review/submitted.1.json"), 1);
    let r = server.deliver("pull_request", "misnamed-1", &review).await;
    assert_eq!(r.status(), 201, "the signed bytes are kept");
    let pool = db.app_pool().await;
    project_all(&pool).await;
    assert_eq!(count(&pool, "decisions").await, 0);
    let problem: String = sqlx::query_scalar("SELECT problem FROM projection_problems")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        problem
            .starts_with("event name pull_request does not match the payload: it has no `number`"),
        "{problem}"
    );
    server.shutdown().await;
}

async fn decisions_of(pool: &sqlx::PgPool, repo: &str) -> Vec<(Option<String>, Option<String>)> {
    sqlx::query_as("SELECT actor, body FROM decisions WHERE repo = $1 ORDER BY seq")
        .bind(repo)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn nul_characters_and_oversized_text_are_cleaned_and_every_account_keeps_projecting() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    // A signed review whose body holds a NUL and is four times GitHub's size limit, whose PR
    // title holds a NUL, and whose reviewer login is a thousand emoji.
    let mut poison: Value =
        serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json")).unwrap();
    poison["review"]["body"] = Value::from(format!("before\u{0}after {}", "x ".repeat(150_000)));
    poison["pull_request"]["title"] = Value::from("Title\u{0} with NUL");
    poison["review"]["user"]["login"] = Value::from("😀".repeat(1000));
    let r = server
        .deliver(
            "pull_request_review",
            "nul-1",
            &serde_json::to_vec(&poison).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201);
    // Then an ordinary delivery of another account.
    let other = common::in_repository(
        &common::fixture("pull_request_review/submitted.1.json"),
        "other-org",
        "payments",
    );
    assert_eq!(
        server
            .deliver("pull_request_review", "ok-1", &other)
            .await
            .status(),
        201
    );

    let pool = db.app_pool().await;
    project_all(&pool).await;
    assert_eq!(count(&pool, "projection_problems").await, 0);
    let poisoned = decisions_of(&pool, "Codertocat/Hello-World").await;
    assert_eq!(poisoned.len(), 1);
    let (actor, body) = &poisoned[0];
    let body = body.as_deref().unwrap();
    assert!(
        body.starts_with("beforeafter x x"),
        "NUL removed, text kept"
    );
    assert!(body.ends_with(verdict::projections::clean::CUT_MARK));
    assert!(body.len() <= verdict::projections::clean::MAX_BODY_BYTES + 100);
    assert_eq!(
        actor.as_deref().unwrap().len(),
        1024,
        "a short text is cut to 1 KB"
    );
    let title: String =
        sqlx::query_scalar("SELECT title FROM pull_requests WHERE repo = 'Codertocat/Hello-World'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(title, "Title with NUL");
    assert_eq!(decisions_of(&pool, "other-org/payments").await.len(), 1);
    // The log keeps the exact bytes.
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM log_entries WHERE delivery_id = 'nul-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, serde_json::to_vec(&poison).unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn an_entry_the_database_refuses_is_skipped_alone_and_reproject_succeeds() {
    let db = TestDb::new().await;
    // Whatever verdict cleans, some value may still be refused: stand in for it with a
    // constraint that refuses one reviewer.
    sqlx::query(
        "ALTER TABLE decisions ADD CONSTRAINT test_poison CHECK (actor IS DISTINCT FROM 'poison-actor')",
    )
    .execute(&db.admin_pool().await)
    .await
    .unwrap();
    let server = db.server(&[common::SECRET]).await;
    let review = |login: &str, n: u64| {
        let mut v: Value =
            serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json"))
                .unwrap();
        v["review"]["user"]["login"] = Value::from(login);
        v["review"]["id"] = Value::from(7_000_000 + n);
        common::variant(&serde_json::to_vec(&v).unwrap(), n)
    };
    for (i, login) in ["rev-a", "poison-actor", "rev-b"].iter().enumerate() {
        let r = server
            .deliver(
                "pull_request_review",
                &format!("r-{i}"),
                &review(login, i as u64),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let other = common::in_repository(&review("rev-c", 9), "other-org", "payments");
    assert_eq!(
        server
            .deliver("pull_request_review", "o-1", &other)
            .await
            .status(),
        201
    );

    let pool = db.app_pool().await;
    project_all(&pool).await;
    let actors: Vec<Option<String>> = decisions_of(&pool, "Codertocat/Hello-World")
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(
        actors,
        [Some("rev-a".to_string()), Some("rev-b".to_string())]
    );
    assert_eq!(decisions_of(&pool, "other-org/payments").await.len(), 1);
    let (seq, problem): (i64, String) =
        sqlx::query_as("SELECT seq, problem FROM projection_problems")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(seq, 1);
    assert!(
        problem.contains("refused") && problem.contains("test_poison"),
        "{problem}"
    );

    let (ok, out) = common::verdict_cli(&["reproject"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    assert!(
        out.contains("4 entries") && out.contains("3 decision records"),
        "{out}"
    );
    assert!(out.contains("1 entries not understood"), "{out}");
    server.shutdown().await;
}

/// The server's address for raw sockets.
fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Request headers of a delivery whose body is `length` bytes (signature as given).
fn delivery_head(delivery: &str, length: usize, signature: Option<&str>) -> String {
    let mut head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: verdict\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: {delivery}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    );
    if let Some(s) = signature {
        head.push_str(&format!("X-Hub-Signature-256: {s}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The status line's code of whatever the server answers on `stream` (None: it closed).
async fn status_of(stream: &mut tokio::net::TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_connections_and_large_bodies_neither_stop_signed_deliveries_nor_shutdown() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let addr = addr(&server);
    // 1,100 connections that never finish their headers (half send nothing at all).
    let mut stalled = Vec::new();
    for i in 0..1100 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: verdict\r\n")
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    // 60 declared 20 MB bodies with a well-formed but wrong signature, each sending 1 MB and
    // then stalling; and 60 with no signature at all.
    let twenty_mb = 20 * 1024 * 1024;
    let fake = format!("sha256={}", "ab".repeat(32));
    let mut large = Vec::new();
    for i in 0..60 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(delivery_head(&format!("big-{i}"), twenty_mb, Some(&fake)).as_bytes())
            .await
            .unwrap();
        let _ = s.write_all(&vec![b' '; 1024 * 1024]).await;
        large.push(s);
    }
    let mut unsigned = 0;
    for i in 0..60 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(delivery_head(&format!("unsigned-{i}"), twenty_mb, None).as_bytes())
            .await
            .unwrap();
        // Refused from its headers alone: no body byte was needed.
        if status_of(&mut s).await == Some(401) {
            unsigned += 1;
        }
    }
    assert_eq!(
        unsigned, 60,
        "unsigned bodies are refused before they are read"
    );

    // Meanwhile GitHub's signed deliveries are stored and health answers.
    let body = common::variant(&common::fixture("push/event.1.json"), 1);
    let r = server.deliver("push", "signed-during-attack", &body).await;
    assert_eq!(r.status(), 201);
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status(), 200);

    // Shutdown finishes even with every one of those connections still open (the large
    // bodies are cut off by the body timeout, the stalled ones closed at once).
    tokio::time::timeout(std::time::Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown completes with stalled clients connected");
    drop((stalled, large));
    let stored: i64 = count(&db.app_pool().await, "log_entries").await;
    assert_eq!(stored, 1, "only the signed delivery was stored");
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new().await;
    let limits = verdict::web::serving::Limits {
        header_timeout: std::time::Duration::from_secs(1),
        body_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let server = db
        .server_with_limits(&[common::SECRET], false, Default::default(), limits)
        .await;
    let addr = addr(&server);

    // Headers never finished: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the server closes a connection whose headers stall")
        .unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("200"),
        "no answer to a half request"
    );

    // An idle keep-alive connection is closed too.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: verdict\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&mut s).await, Some(200));
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an idle connection is closed after the header timeout");
    assert_eq!(closed.unwrap_or(0), 0);

    // A signed delivery whose body stalls halfway: 408, nothing stored.
    let body = common::variant(&common::fixture("push/event.1.json"), 2);
    let signature = verdict::intake::signature::sign(common::SECRET.as_bytes(), &body);
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(delivery_head("slow-body", body.len(), Some(&signature)).as_bytes())
        .await
        .unwrap();
    s.write_all(&body[..body.len() / 2]).await.unwrap();
    assert_eq!(status_of(&mut s).await, Some(408));
    // The same delivery sent at once is stored.
    let r = server.deliver("push", "slow-body", &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(count(&db.app_pool().await, "log_entries").await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_the_cap_frees_up() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new().await;
    let limits = verdict::web::serving::Limits {
        max_connections: 16,
        ..Default::default()
    };
    let server = db
        .server_with_limits(&[common::SECRET], false, Default::default(), limits)
        .await;
    let addr = addr(&server);
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: verdict\r\n\r\n")
        .await;
    assert_eq!(
        status_of(&mut extra).await,
        None,
        "closed without an answer"
    );
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    server.shutdown().await;
}

/// A real `pull_request` `opened` payload as pull request `number`, with `html_url`.
fn pull_with_url(number: i64, html_url: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&common::fixture("pull_request/opened.1.json")).unwrap();
    p["number"] = serde_json::json!(number);
    p["pull_request"]["number"] = serde_json::json!(number);
    p["pull_request"]["id"] = serde_json::json!(900_000 + number);
    p["pull_request"]["html_url"] = serde_json::json!(html_url);
    serde_json::to_vec(&p).unwrap()
}

#[tokio::test]
async fn links_from_payloads_are_githubs_or_nothing_and_images_load_nothing() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let repo = "Codertocat/Hello-World";
    for (n, url) in [
        (101, "javascript:alert(document.cookie)"),
        (102, "//evil.example/Codertocat/Hello-World/pull/102"),
        (103, "https://github.com@evil.example/pull/103"),
        (104, "https://github.com/Codertocat/Hello-World/pull/104"),
    ] {
        let r = server
            .deliver("pull_request", &format!("pr-{n}"), &pull_with_url(n, url))
            .await;
        assert_eq!(r.status(), 201);
    }
    // A review whose body carries a tracking pixel, as Markdown and as HTML.
    let mut review: Value =
        serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json")).unwrap();
    review["pull_request"]["number"] = serde_json::json!(104);
    review["pull_request"]["id"] = serde_json::json!(900_104);
    review["pull_request"]["html_url"] =
        serde_json::json!("https://github.com/Codertocat/Hello-World/pull/104");
    review["review"]["id"] = serde_json::json!(104_001);
    review["review"]["body"] = serde_json::json!(
        "Looks right. ![the form](https://tracker.example/pixel.png) \
         <img src=\"https://tracker.example/p.gif\"> [more](javascript:alert(1))"
    );
    let r = server
        .deliver(
            "pull_request_review",
            "review-pixel",
            &serde_json::to_vec(&review).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201);
    project_all(&db.app_pool().await).await;

    for n in [101, 102, 103] {
        let page = server
            .get(&format!("/{repo}/pull/{n}"), Some(ADMIN_TOKEN))
            .await
            .text()
            .await
            .unwrap();
        // The payload's html_url is not linked; the links verdict builds itself (from the
        // repository's name and the PR number) go to GitHub's own host only.
        assert!(!page.contains("id=\"pr-on-github\""), "#{n}: {page}");
        for link in page.split("class=\"on-github\" href=\"").skip(1) {
            assert!(
                link.starts_with(&format!("https://github.com/{repo}/pull/{n}")),
                "#{n}: {link}"
            );
        }
        assert!(
            !page.contains("javascript:") && !page.contains("evil.example"),
            "#{n}"
        );
        let api: Value = server
            .get(&format!("/api/{repo}/pull/{n}"), Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(api["pull"]["html_url"], Value::Null, "#{n}");
    }
    let page = server
        .get(&format!("/{repo}/pull/104"), Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(
        "<a id=\"pr-on-github\" href=\"https://github.com/Codertocat/Hello-World/pull/104\" rel=\"noopener noreferrer\">on GitHub</a>"
    ));
    assert!(!page.contains("<img"), "no image loads: {page}");
    assert!(page.contains(">image: the form</a>"));
    assert!(!page.contains("javascript:"));
    server.shutdown().await;
}

#[tokio::test]
async fn names_in_addresses_follow_githubs_rules_or_answer_400() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    project_all(&db.app_pool().await).await;
    for path in [
        "/%2F%2Fevil.example/storefront",
        "/acme/storefront%0D%0ASet-Cookie:%20x=1/report.csv",
        "/acme/web%22%3B%20filename%3Devil.exe/report.csv",
        "/api/acme%00/storefront",
        "/acme/storefront/features/%3Cscript%3E",
        "/records/acme%00/1",
        "/api/logs/..%2F..%2Fetc/checkpoint",
        "/findings?repo=acme/storefront%00",
        "/acme/storefront?q=checkout%00",
    ] {
        let r = server.get(path, Some(ADMIN_TOKEN)).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            !body.contains("invalid byte sequence") && !body.contains("0x00"),
            "{body}"
        );
    }
    let csv = server
        .get(&format!("/{}/report.csv", story::REPO), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(
        csv.headers()["content-disposition"],
        "attachment; filename=\"acme-storefront-report.csv\""
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_answer_forbids_script_framing_and_sniffing() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    project_all(&db.app_pool().await).await;
    let unsigned = server.deliver_signed(None, "push", "unsigned", b"{}").await;
    assert_eq!(unsigned.status(), 401);
    let mut answers = vec![("unsigned webhook".to_string(), unsigned.headers().clone())];
    for path in [
        "/",
        &format!("/{}/pull/42", story::REPO),
        "/api/",
        "/healthz",
        "/no/such/page/here",
        "/assets/verdict.css",
    ] {
        let r = server.get(path, None).await;
        answers.push((path.to_string(), r.headers().clone()));
    }
    for (what, h) in &answers {
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{what}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["referrer-policy"], "same-origin", "{what}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    }
    // The pages hold no inline script or style for the policy to have to allow.
    let page = server
        .get(
            &format!("/{}/features/{}", story::REPO, story::FEATURE_KEY),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script") && !page.contains("<style") && !page.contains(" style="));
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/assets/verdict.css\">"));
    let css = server.get("/assets/verdict.css", None).await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains(".timeline"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_addresses_never_show_more_than_scheme_host_and_port() {
    let db = TestDb::new().await;
    // Nobody listens there: every attempt fails, with errors that quote the address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spelled = format!("HTTP://hook-user:SECRETPW@127.0.0.1:{port}/a/../hook?token=SECRETTOKEN");
    let feedback = verdict::feedback::FeedbackConfig {
        alerts: vec![verdict::feedback::alerts::parse_target(&spelled).unwrap()],
        retry: verdict::feedback::outbox::RetryPolicy {
            first_delay: std::time::Duration::from_millis(50),
            max_delay: std::time::Duration::from_millis(50),
            max_attempts: 2,
        },
        judge_settle: std::time::Duration::ZERO,
        ..Default::default()
    };
    let server = db
        .server_with_feedback(&[common::SECRET], true, feedback)
        .await;
    server.deliver_story().await;
    let pool = db.app_pool().await;
    for _ in 0..400 {
        project_all(&pool).await;
        let failed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox_attempts WHERE error IS NOT NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if failed >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT error FROM outbox_attempts WHERE error IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!errors.is_empty(), "the alerts were attempted");
    for path in ["/outbox", "/api/outbox"] {
        let text = server
            .get(path, Some(ADMIN_TOKEN))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            text.contains(&format!("http://127.0.0.1:{port}/…")),
            "{path}: {text}"
        );
        for secret in ["SECRETPW", "SECRETTOKEN", "hook-user", "/hook"] {
            assert!(!text.contains(secret), "{path} shows {secret}: {text}");
        }
    }
    server.shutdown().await;
}
