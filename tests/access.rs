//! Sign in with GitHub, and one visibility rule everywhere: each person sees exactly the
//! repositories GitHub lets them read, against a stand-in for GitHub speaking its own shapes.
//!
//! The world: account `acme` with the public `acme/storefront` (the feature story) and the
//! private `acme/billing` (the same story, another feature). alice-pm can read both through
//! the App's installations (two installations, so both lists paginate); bob-dev only the
//! public one; carol-ops reads nothing on GitHub but is an operator.

mod common;

use common::github::{FakeGitHub, Person};
use common::{ADMIN_TOKEN, Browser, TestDb, TestServer, project_all};
use serde_json::{Value, json};
use verdict::story;
use verdict::web::access::AccessConfig;
use verdict::web::{Guard, route_table};

const PUBLIC: &str = story::REPO;
const PRIVATE: &str = story::PRIVATE_REPO;

struct World {
    db: TestDb,
    server: TestServer,
    github: FakeGitHub,
    alice: Person,
    bob: Person,
    carol: Person,
}

async fn world() -> World {
    let alice = Person::new(
        "alice-pm",
        1001,
        &[(11, &[PUBLIC]), (12, &["acme/unrelated", PRIVATE])],
    );
    let bob = Person::new("bob-dev", 1002, &[(11, &[PUBLIC])]);
    let carol = Person::new("carol-ops", 1003, &[]);
    let github = FakeGitHub::start(vec![alice.clone(), bob.clone(), carol.clone()]).await;
    let db = TestDb::new().await;
    let server = db
        .server_with_access(
            true,
            AccessConfig {
                sign_in: Some(github.sign_in_config()),
                admin_token: Some(ADMIN_TOKEN.into()),
                operators: vec!["Carol-Ops".into()],
                ..Default::default()
            },
        )
        .await;
    server.deliver_story().await;
    for d in story::private_story("test") {
        let r = server.deliver(d.event, &d.delivery_id, &d.body).await;
        assert!(r.status().is_success());
    }
    // Both features judged: three findings each.
    let pool = db.app_pool().await;
    for _ in 0..400 {
        project_all(&pool).await;
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
            .fetch_one(&pool)
            .await
            .unwrap();
        if found >= 6 {
            project_all(&pool).await;
            return World {
                db,
                server,
                github,
                alice,
                bob,
                carol,
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the judge did not record both stories' findings");
}

async fn text(r: reqwest::Response) -> (u16, String) {
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn signed_in(w: &World, person: &Person) -> Browser {
    let b = Browser::new(&w.server);
    let r = b.sign_in(&w.github, person, "/").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert!(b.cookie("verdict_session").is_some());
    b
}

#[tokio::test]
async fn signing_in_with_github_shows_what_github_lets_each_person_read() {
    let w = world().await;
    let feature = format!("/{PRIVATE}/features/{}", story::FEATURE_KEY);

    // Anonymous: the private feature does not exist, and signing in is offered.
    let anonymous = Browser::new(&w.server);
    let (status, page) = text(anonymous.get(&feature).await).await;
    assert_eq!(status, 404);
    assert!(
        page.contains("sign in with GitHub to see private repositories"),
        "{page}"
    );
    assert!(page.contains("Sign in with GitHub"));

    // alice signs in from there and comes back to it.
    let alice = Browser::new(&w.server);
    let back = alice.sign_in(&w.github, &w.alice, &feature).await;
    assert_eq!(back.status(), 303);
    assert_eq!(back.headers()["location"], feature.as_str());
    let cookie = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .find(|c| c.starts_with("verdict_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "verdict's public URL here is http"
    );
    let (status, page) = text(alice.get(&feature).await).await;
    assert_eq!(status, 200);
    assert!(page.contains(story::PRIVATE_FEATURE_TITLE));
    assert!(page.contains("@alice-pm"));

    // The authorization request: this App, the callback, a random state, PKCE S256; the
    // verifier sent with the code hashes to the challenge.
    let to = alice.last_authorize.lock().unwrap().clone().unwrap();
    let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "Iv1.test-client");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/login/callback", w.server.base)
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 43);
    let verifier = w.github.verifiers().pop().unwrap();
    assert_eq!(
        verdict::web::access::sessions::pkce_challenge(&verifier),
        q["code_challenge"]
    );

    // Both lists were followed to their last page (one item per page in the stand-in).
    let pages = |path: &'static str| {
        let gh = w.github.clone();
        async move {
            gh.requests_to(path)
                .await
                .iter()
                .filter_map(|r| {
                    r.url
                        .query_pairs()
                        .find(|(k, _)| k == "page")
                        .map(|(_, v)| v.to_string())
                })
                .collect::<Vec<_>>()
        }
    };
    assert!(
        pages("/user/installations")
            .await
            .contains(&"2".to_string())
    );
    assert!(
        pages("/user/installations/12/repositories")
            .await
            .contains(&"2".to_string()),
        "acme/billing is on the second page of installation 12"
    );

    // bob reads only the public repository on GitHub: the private feature is a 404 to him.
    let bob = signed_in(&w, &w.bob).await;
    let (status, page) = text(bob.get(&feature).await).await;
    assert_eq!(status, 404);
    assert!(!page.contains(story::PRIVATE_FEATURE_TITLE));
    assert!(page.contains("@bob-dev"));
    assert_eq!(bob.get(&format!("/{PUBLIC}")).await.status(), 200);

    // The person's GitHub token never reaches the browser, and is sealed in the database.
    let tokens: Vec<Vec<u8>> = sqlx::query_scalar("SELECT access_token FROM sessions")
        .fetch_all(&w.db.admin_pool().await)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 2);
    for t in tokens {
        assert!(
            !String::from_utf8_lossy(&t).contains("ghu_"),
            "sealed at rest"
        );
    }
    for b in [&alice, &bob] {
        assert!(!b.cookie("verdict_session").unwrap().contains("ghu_"));
        let (_, page) = text(b.get("/").await).await;
        assert!(!page.contains("ghu_"));
    }
    w.server.shutdown().await;
}

/// Values for a route's parameters that point at repository `repo`.
struct Target {
    repo: &'static str,
    /// A delivery of that repository: its log position and GUID.
    seq: i64,
    guid: String,
    /// A finding about that repository.
    finding: i64,
}

async fn target(w: &World, repo: &'static str) -> Target {
    let pool = w.db.app_pool().await;
    let (seq, guid): (i64, String) = sqlx::query_as(
        "SELECT e.seq, e.delivery_id FROM decisions d
           JOIN log_entries e ON e.log_id = d.log_id AND e.seq = d.seq
          WHERE d.repo = $1 ORDER BY e.seq LIMIT 1",
    )
    .bind(repo)
    .fetch_one(&pool)
    .await
    .unwrap();
    let finding: i64 = sqlx::query_scalar("SELECT min(seq) FROM findings WHERE repo = $1")
        .bind(repo)
        .fetch_one(&pool)
        .await
        .unwrap();
    Target {
        repo,
        seq,
        guid,
        finding,
    }
}

/// `path` with its parameters filled in for `t`; `None` for routes that name no repository.
fn fill(path: &str, t: &Target) -> Option<String> {
    let (owner, name) = t.repo.split_once('/').unwrap();
    let filled = path
        .replace("{owner}", owner)
        .replace("{repo}", name)
        .replace("{number}", "42")
        .replace("{feature}", story::FEATURE_KEY)
        .replace("{account}", story::ACCOUNT);
    let filled = if path.contains("/findings/{account}/{seq}") {
        filled.replace("{seq}", &t.finding.to_string())
    } else {
        filled.replace("{seq}", &t.seq.to_string())
    };
    Some(match path {
        "/api/logs/{account}/proof/inclusion" => format!("{filled}?delivery={}", t.guid),
        // An account's page lists several repositories: checked as a list, below.
        p if p.contains("{repo}") || p.contains("{seq}") => filled,
        _ => return None,
    })
}

#[tokio::test]
async fn every_route_hides_what_the_viewer_cannot_read() {
    let w = world().await;
    let (public, private) = (target(&w, PUBLIC).await, target(&w, PRIVATE).await);
    w.server
        .checkpoint_at_least(
            story::ACCOUNT,
            (private.seq.max(private.finding) + 1) as u64,
        )
        .await;
    let anonymous = Browser::new(&w.server);
    let bob = signed_in(&w, &w.bob).await;
    let alice = signed_in(&w, &w.alice).await;
    let bob_csrf = bob.csrf("/").await;
    let alice_csrf = alice.csrf("/").await;

    let mut checked = 0;
    for route in route_table() {
        if route.guard == Guard::Machine {
            assert!(
                // Deliveries in, health out, and the static stylesheet: no repository data.
                [
                    "/webhooks/github",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/assets/verdict.css"
                ]
                .contains(&route.path),
                "{} is a machine route: say what it shows",
                route.path
            );
            continue;
        }
        let per_repo = fill(route.path, &private).is_some();
        match (route.method, per_repo) {
            ("GET", true) => {
                let (hidden, shown) = (
                    fill(route.path, &private).unwrap(),
                    fill(route.path, &public).unwrap(),
                );
                for (who, b) in [("anonymous", &anonymous), ("bob", &bob)] {
                    let r = b.get(&hidden).await;
                    assert_eq!(r.status(), 404, "{who} GET {hidden}");
                    let body = r.text().await.unwrap();
                    assert!(
                        !body.contains(story::PRIVATE_FEATURE_TITLE),
                        "{who} {hidden}"
                    );
                    assert_eq!(b.get(&shown).await.status(), 200, "{who} GET {shown}");
                }
                assert_eq!(alice.get(&hidden).await.status(), 200, "alice GET {hidden}");
            }
            ("POST", true) if route.path.contains("redact") => {
                // Erasing is for operators only: everyone else is refused, whatever they see.
                for path in [fill(route.path, &private), fill(route.path, &public)] {
                    let path = path.unwrap();
                    for (who, b, csrf) in [
                        ("anonymous", &anonymous, String::new()),
                        ("bob", &bob, bob_csrf.clone()),
                        ("alice", &alice, alice_csrf.clone()),
                    ] {
                        let r = if path.starts_with("/api/") {
                            b.post_json(&path, Some(&csrf), &json!({"reason": "x"}))
                                .await
                        } else {
                            b.post_form(&path, &[("csrf", &csrf), ("reason", "x")])
                                .await
                        };
                        assert_eq!(r.status(), 403, "{who} POST {path}");
                    }
                }
            }
            ("POST", true) => {
                let (hidden, shown) = (
                    fill(route.path, &private).unwrap(),
                    fill(route.path, &public).unwrap(),
                );
                let is_api = hidden.starts_with("/api/");
                let post = async |b: &Browser, path: String, csrf: String| {
                    let body = json!({"note": "seen, fine"});
                    if path.starts_with("/api/") {
                        b.post_json(&path, Some(&csrf), &body).await
                    } else {
                        b.post_form(&path, &[("csrf", &csrf), ("note", "seen, fine")])
                            .await
                    }
                };
                let ok = if is_api { 201 } else { 303 };
                assert_eq!(
                    post(&bob, hidden.clone(), bob_csrf.clone()).await.status(),
                    404,
                    "bob POST {hidden}"
                );
                assert_eq!(
                    post(&bob, shown.clone(), bob_csrf.clone()).await.status(),
                    ok,
                    "bob POST {shown}"
                );
                assert_eq!(
                    post(&alice, hidden.clone(), alice_csrf.clone())
                        .await
                        .status(),
                    ok,
                    "alice POST {hidden}"
                );
                let anon = post(&anonymous, hidden.clone(), String::new()).await;
                assert_eq!(anon.status(), 403, "anonymous POST {hidden}");
            }
            ("GET", false) => {
                // Lists across repositories: the private one's name appears to alice only.
                let path = match route.path {
                    "/login" | "/login/callback" => continue,
                    // Search for the private feature by its title: only alice finds it.
                    "/api/search" => "/api/search?q=vault".to_string(),
                    p => p.replace("{owner}", story::ACCOUNT),
                };
                let path = path.as_str();
                for (who, b) in [("anonymous", &anonymous), ("bob", &bob)] {
                    let (status, body) = text(b.get(path).await).await;
                    assert!(status < 500, "{who} GET {path}: {status}");
                    assert!(!body.contains(PRIVATE), "{who} GET {path} shows {PRIVATE}");
                }
                if [
                    "/",
                    "/findings",
                    "/api/",
                    "/api/findings",
                    "/acme",
                    "/api/acme",
                    "/api/search?q=vault",
                ]
                .contains(&path)
                {
                    let (_, body) = text(alice.get(path).await).await;
                    assert!(body.contains(PRIVATE), "alice GET {path} lists {PRIVATE}");
                }
            }
            ("POST", false) => {
                assert!(
                    ["/logout", "/login/refresh", "/operator"].contains(&route.path),
                    "POST {} is not covered by this test: say what it changes and for whom",
                    route.path
                );
                continue;
            }
            (method, _) => panic!("{method} {} is not covered by this test", route.path),
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} routes checked");

    // Proofs by index reveal only hashes (and anyone can check the log's growth); by
    // delivery they say whether a delivery exists, so they follow the rule (above). The
    // same question about a delivery that does not exist answers the same way.
    let r = anonymous
        .get(&format!(
            "/api/logs/{}/proof/inclusion?delivery=no-such-guid",
            story::ACCOUNT
        ))
        .await;
    assert_eq!(r.status(), 404);
    w.server.shutdown().await;
}

#[tokio::test]
async fn privatized_hides_the_whole_history_at_once_and_counts_exclude_what_is_hidden() {
    let w = world().await;
    let pool = w.db.app_pool().await;
    let feature = format!("/api/{PUBLIC}/features/{}", story::FEATURE_KEY);
    let alice = signed_in(&w, &w.alice).await;
    let bob = signed_in(&w, &w.bob).await;

    // A private pull request joins the public feature (a cross-repository closing keyword).
    let mut pr: Value = serde_json::from_slice(&story::private_story("x")[1].body).unwrap();
    pr["number"] = json!(77);
    pr["pull_request"]["number"] = json!(77);
    pr["pull_request"]["body"] = json!(format!("Closes {PUBLIC}#41"));
    let r = w
        .server
        .deliver(
            "pull_request",
            "private-77",
            &serde_json::to_vec(&pr).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201);
    project_all(&pool).await;
    let totals = async |b: &Browser| {
        let v: Value = b.get(&feature).await.json().await.unwrap();
        (
            v["totals"]["pull_requests"].as_u64().unwrap(),
            v["decisions"]["total"].as_u64().unwrap(),
        )
    };
    let (alice_prs, alice_decisions) = totals(&alice).await;
    let (bob_prs, bob_decisions) = totals(&bob).await;
    assert_eq!(alice_prs, 3, "alice counts the private pull request");
    assert_eq!(bob_prs, 2, "bob's totals leave it out");
    assert_eq!(alice_decisions, bob_decisions + 1);
    let findings = async |b: &Browser| {
        let v: Value = b.get("/api/findings").await.json().await.unwrap();
        v["total"].as_u64().unwrap()
    };
    assert_eq!(findings(&alice).await, 6);
    assert_eq!(findings(&bob).await, 3);

    // The public repository is made private on GitHub: its whole history disappears for
    // everyone GitHub does not let read it, at once.
    let anonymous = Browser::new(&w.server);
    assert_eq!(anonymous.get(&format!("/{PUBLIC}")).await.status(), 200);
    let privatized = |action: &str, private: bool, at: &str| {
        let mut v: Value =
            serde_json::from_slice(&common::fixture("repository/privatized.1.json")).unwrap();
        v["action"] = json!(action);
        v["repository"]["full_name"] = json!(PUBLIC);
        v["repository"]["name"] = json!("storefront");
        v["repository"]["owner"]["login"] = json!("acme");
        v["repository"]["private"] = json!(private);
        v["repository"]["updated_at"] = json!(at);
        v["organization"] = json!({"login": "acme"});
        serde_json::to_vec(&v).unwrap()
    };
    let r = w
        .server
        .deliver(
            "repository",
            "privatized-1",
            &privatized("privatized", true, "2026-11-20T00:00:00Z"),
        )
        .await;
    assert_eq!(r.status(), 201);
    project_all(&pool).await;
    for path in [
        format!("/{PUBLIC}"),
        format!("/{PUBLIC}/pull/42"),
        format!("/{PUBLIC}/features/{}", story::FEATURE_KEY),
        format!("/records/{}/0", story::ACCOUNT),
        format!("/api/{PUBLIC}/report"),
    ] {
        assert_eq!(anonymous.get(&path).await.status(), 404, "anonymous {path}");
        assert_eq!(
            bob.get(&path).await.status(),
            200,
            "bob can read it on GitHub: {path}"
        );
    }
    let (_, index) = text(anonymous.get("/").await).await;
    assert!(!index.contains(PUBLIC));
    // An older delivery arriving late (GitHub does not order them) does not make it public.
    let late = common::variant(&privatized("edited", false, "2026-11-01T00:00:00Z"), 1);
    assert_eq!(
        w.server
            .deliver("repository", "late-1", &late)
            .await
            .status(),
        201
    );
    project_all(&pool).await;
    assert_eq!(anonymous.get(&format!("/{PUBLIC}")).await.status(), 404);
    // Made public again: visible again.
    let r = w
        .server
        .deliver(
            "repository",
            "publicized-1",
            &privatized("publicized", false, "2026-11-21T00:00:00Z"),
        )
        .await;
    assert_eq!(r.status(), 201);
    project_all(&pool).await;
    assert_eq!(anonymous.get(&format!("/{PUBLIC}")).await.status(), 200);
    w.server.shutdown().await;
}

#[tokio::test]
async fn tokens_are_renewed_a_revoked_sign_in_ends_and_access_can_be_refreshed() {
    let w = world().await;
    let private = format!("/{PRIVATE}");
    // GitHub's user tokens expire (8 hours); here within the minute verdict renews ahead.
    w.github.tokens_expire_in(30);
    let alice = signed_in(&w, &w.alice).await;
    assert_eq!(alice.get(&private).await.status(), 200);
    let exchanges = w.github.requests_to("/login/oauth/access_token").await;
    let refreshes: Vec<_> = exchanges
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .collect();
    assert!(
        !refreshes.is_empty(),
        "the expiring token was renewed with the refresh token"
    );
    assert_eq!(alice.get(&private).await.status(), 200, "still signed in");

    // alice revokes the App on GitHub: her next renewal is refused and her session ends.
    w.github.revoke("alice-pm");
    let (status, page) = text(alice.get(&private).await).await;
    assert_eq!(status, 404);
    assert!(page.contains("Sign in with GitHub"), "signed out");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE github_login = 'alice-pm'")
            .fetch_one(&w.db.admin_pool().await)
            .await
            .unwrap();
    assert_eq!(left, 0, "the session ended on the server");

    // bob is given access on GitHub; "refresh my access" shows it at once.
    w.github.tokens_expire_in(28_800);
    let bob = signed_in(&w, &w.bob).await;
    assert_eq!(bob.get(&private).await.status(), 404);
    w.github
        .set_installations("bob-dev", &[(11, &[PUBLIC]), (12, &[PRIVATE])]);
    assert_eq!(
        bob.get(&private).await.status(),
        404,
        "until re-read (every 5 minutes)"
    );
    let csrf = bob.csrf("/").await;
    let r = bob
        .post_form("/login/refresh", &[("csrf", &csrf), ("next", &private)])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(bob.get(&private).await.status(), 200);

    // While GitHub is down, what was last read stands (and nothing breaks).
    w.github.set_down(true);
    let csrf = bob.csrf("/").await;
    bob.post_form("/login/refresh", &[("csrf", &csrf)]).await;
    assert_eq!(bob.get(&private).await.status(), 200);
    w.server.shutdown().await;
}

#[tokio::test]
async fn a_failed_sign_in_explains_itself_and_signs_nobody_in() {
    let w = world().await;
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sessions")
            .fetch_one(&w.db.admin_pool().await)
            .await
            .unwrap()
    };
    let b = Browser::new(&w.server);

    // A state verdict never issued.
    let (status, page) = text(
        b.get("/login/callback?code=code-alice-pm&state=forged")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("not valid") && page.contains("/login?next="),
        "{page}"
    );

    // GitHub says no (the person declined).
    let r = b
        .sign_in_with(
            &w.github,
            "/",
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The user has denied your application access.",
                ),
            ],
        )
        .await;
    let (status, page) = text(r).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("GitHub did not sign you in") && page.contains("denied"),
        "{page}"
    );

    // A code GitHub does not accept.
    let (status, page) = text(b.sign_in_with(&w.github, "/", &[("code", "stale")]).await).await;
    assert_eq!(status, 400);
    assert!(page.contains("incorrect or expired"), "{page}");

    // Started in one browser, finished in another (a login CSRF): refused.
    let start = b.get("/login?next=/").await;
    let to = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let state = to
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let other = Browser::new(&w.server);
    let r = other
        .get(&format!("/login/callback?code=code-alice-pm&state={state}"))
        .await;
    assert_eq!(r.status(), 400);

    // The same state twice: the second is refused (and the first was used up above, too).
    let r = b
        .get(&format!("/login/callback?code=code-alice-pm&state={state}"))
        .await;
    assert_eq!(r.status(), 400, "a state is single use");

    // GitHub down: 502 with a way to try again.
    w.github.set_down(true);
    let (status, page) = text(b.sign_in(&w.github, &w.alice, "/").await).await;
    assert_eq!(status, 502);
    assert!(
        page.contains("GitHub could not be reached") && page.contains("/login?next="),
        "{page}"
    );
    assert_eq!(sessions().await, 0, "nobody is half signed in");
    assert!(b.cookie("verdict_session").is_none());

    // Back up: the same browser signs in.
    w.github.set_down(false);
    assert_eq!(b.sign_in(&w.github, &w.alice, "/").await.status(), 303);
    assert_eq!(sessions().await, 1);
    // `next` stays on this site.
    let r = b.get("/login?next=//evil.example/x").await;
    let state_next: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sign_in_attempts WHERE next_path <> '/'")
            .fetch_one(&w.db.admin_pool().await)
            .await
            .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(state_next, 0, "an off-site next became /");
    w.server.shutdown().await;
}

#[tokio::test]
async fn forms_need_the_sessions_token_and_signing_out_ends_the_session() {
    let w = world().await;
    let alice = signed_in(&w, &w.alice).await;
    let session = alice.cookie("verdict_session").unwrap();
    let csrf = alice.csrf("/").await;

    let r = alice.post_form("/logout", &[]).await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let r = alice.post_form("/logout", &[("csrf", "guess")]).await;
    assert_eq!(r.status(), 403, "a wrong one");
    // Right token, sent from another site.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/logout", w.server.base))
        .header("cookie", format!("verdict_session={session}"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "another origin");
    assert_eq!(
        alice.get(&format!("/{PRIVATE}")).await.status(),
        200,
        "still signed in"
    );

    let r = alice.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert!(alice.cookie("verdict_session").is_none());
    // The old cookie is worthless: the session ended on the server.
    alice.set_cookie("verdict_session", &session);
    let (status, page) = text(alice.get(&format!("/{PRIVATE}")).await).await;
    assert_eq!(status, 404);
    assert!(page.contains("Sign in with GitHub"));
    w.server.shutdown().await;
}

#[tokio::test]
async fn an_acknowledgement_records_who_from_the_session() {
    let w = world().await;
    let private = target(&w, PRIVATE).await;
    let alice = signed_in(&w, &w.alice).await;
    let csrf = alice.csrf("/findings").await;
    let (_, findings) = text(alice.get("/findings").await).await;
    assert!(findings.contains("Recorded in the log as @alice-pm"));
    assert!(
        !findings.contains("name=\"by\""),
        "people do not type a name"
    );
    let r = alice
        .post_form(
            &format!(
                "/findings/{}/{}/acknowledge",
                story::ACCOUNT,
                private.finding
            ),
            &[
                ("csrf", &csrf),
                ("note", "Billing accepted the risk"),
                ("by", "someone-else"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let at = r.headers()["location"].to_str().unwrap().to_string();
    let record: Value = alice.get(&format!("/api{at}")).await.json().await.unwrap();
    assert_eq!(record["kind"], "verdict-ack");
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["by"], "alice-pm", "the session says who, not the form");
    assert_eq!(body["github_user_id"], 1001);
    assert_eq!(body["via"], "github");
    assert_eq!(body["finding_seq"], private.finding);
    w.server.shutdown().await;
}

#[tokio::test]
async fn operators_see_everything_and_wrong_tokens_are_throttled() {
    let w = world().await;
    let private = format!("/{PRIVATE}");
    // carol reads nothing on GitHub, but VERDICT_OPERATORS names her (any case).
    let carol = signed_in(&w, &w.carol).await;
    let (status, page) = text(carol.get(&private).await).await;
    assert_eq!(status, 200);
    assert!(page.contains("(operator)"));
    // The admin token, for scripts.
    assert_eq!(
        w.server.get(&private, Some(ADMIN_TOKEN)).await.status(),
        200
    );
    // Entered once in a browser: an operator session that signing out ends.
    let b = Browser::new(&w.server);
    let r = b.post_form("/operator", &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(b.get(&private).await.status(), 200);
    let csrf = b.csrf("/").await;
    assert_eq!(
        b.post_form("/logout", &[("csrf", &csrf)]).await.status(),
        303
    );
    assert_eq!(b.get(&private).await.status(), 404);
    // Guessing: five wrong tries, then this address must wait, even with the right token.
    for _ in 0..verdict::web::access::operator::FREE_FAILURES {
        assert_eq!(
            b.post_form("/operator", &[("token", "guess")])
                .await
                .status(),
            401
        );
    }
    let (status, page) = text(b.post_form("/operator", &[("token", ADMIN_TOKEN)]).await).await;
    assert_eq!(status, 429);
    assert!(page.contains("wait"), "{page}");
    assert_eq!(
        w.server.get(&private, Some(ADMIN_TOKEN)).await.status(),
        429
    );
    w.server.shutdown().await;
}
