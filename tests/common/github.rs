//! A stand-in for GitHub's sign-in endpoints on a local wiremock server, answering in GitHub's
//! own shapes (tests/fixtures/github-rest): the OAuth token endpoint (codes, single-use refresh
//! tokens, errors), `GET /user`, and the person's installations and repositories, one per page
//! so every list is paginated through `Link: rel="next"`. Tokens can be revoked and GitHub can
//! be taken down, as happens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Someone who can sign in.
#[derive(Debug, Clone)]
pub struct Person {
    pub login: String,
    pub id: i64,
    /// Repositories they can read through the App, by installation.
    pub installations: Vec<(u64, Vec<String>)>,
}

impl Person {
    pub fn new(login: &str, id: i64, installations: &[(u64, &[&str])]) -> Person {
        Person {
            login: login.into(),
            id,
            installations: installations
                .iter()
                .map(|(i, repos)| (*i, repos.iter().map(|r| r.to_string()).collect()))
                .collect(),
        }
    }

    /// The authorization code GitHub hands this person's browser.
    pub fn code(&self) -> String {
        format!("code-{}", self.login)
    }
}

#[derive(Default)]
struct State {
    people: Vec<Person>,
    /// access token → login
    tokens: HashMap<String, String>,
    /// refresh token → login (removed once used)
    refresh: HashMap<String, String>,
    issued: u64,
    /// Seconds the access tokens it issues live.
    expires_in: i64,
    down: bool,
    /// Every `code_verifier` sent with a code.
    verifiers: Vec<String>,
}

/// The stand-in; clone it freely (it shares its state).
#[derive(Clone)]
pub struct FakeGitHub {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

fn rest_fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-rest")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

impl FakeGitHub {
    pub async fn start(people: Vec<Person>) -> FakeGitHub {
        let server = Arc::new(MockServer::start().await);
        let state = Arc::new(Mutex::new(State {
            people,
            expires_in: 28_800,
            ..Default::default()
        }));
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
                base: server.uri(),
            })
            .mount(&server)
            .await;
        FakeGitHub { server, state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The sign-in settings that point verdict at this stand-in.
    pub fn sign_in_config(&self) -> verdict::github::sign_in::SignInConfig {
        verdict::github::sign_in::SignInConfig {
            client_id: "Iv1.test-client".into(),
            client_secret: "test-client-secret".into(),
            github_url: self.uri(),
            api_url: self.uri(),
        }
    }

    /// Access tokens issued from now on live `seconds`.
    pub fn tokens_expire_in(&self, seconds: i64) {
        self.state.lock().unwrap().expires_in = seconds;
    }

    /// GitHub no longer accepts any of `login`'s tokens (the person revoked the App).
    pub fn revoke(&self, login: &str) {
        let mut s = self.state.lock().unwrap();
        s.tokens.retain(|_, l| l != login);
        s.refresh.retain(|_, l| l != login);
    }

    /// GitHub is down (every answer 503) or back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Changes what `login` can read.
    pub fn set_installations(&self, login: &str, installations: &[(u64, &[&str])]) {
        let mut s = self.state.lock().unwrap();
        if let Some(p) = s.people.iter_mut().find(|p| p.login == login) {
            *p = Person::new(login, p.id, installations);
        }
    }

    pub fn verifiers(&self) -> Vec<String> {
        self.state.lock().unwrap().verifiers.clone()
    }

    /// The requests GitHub received on `path`.
    pub async fn requests_to(&self, path: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == path)
            .collect()
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    base: String,
}

fn json_answer(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap();
        if s.down {
            return ResponseTemplate::new(503).set_body_string("unicorn");
        }
        let path = request.url.path().to_string();
        if path == "/login/oauth/access_token" {
            let form: HashMap<String, String> =
                form_urlencoded::parse(&request.body).into_owned().collect();
            let login = if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
                let token = form.get("refresh_token").cloned().unwrap_or_default();
                match s.refresh.remove(&token) {
                    Some(login) => login,
                    None => {
                        return json_answer(
                            200,
                            json!({"error": "bad_refresh_token",
                                   "error_description": "The refresh token passed is incorrect or expired."}),
                        );
                    }
                }
            } else {
                let code = form.get("code").cloned().unwrap_or_default();
                s.verifiers
                    .push(form.get("code_verifier").cloned().unwrap_or_default());
                match s.people.iter().find(|p| p.code() == code) {
                    Some(p) => p.login.clone(),
                    None => {
                        return json_answer(
                            200,
                            json!({"error": "bad_verification_code",
                                   "error_description": "The code passed is incorrect or expired."}),
                        );
                    }
                }
            };
            s.issued += 1;
            let access = format!("ghu_{login}_{}", s.issued);
            let refresh = format!("ghr_{login}_{}", s.issued);
            s.tokens.insert(access.clone(), login.clone());
            s.refresh.insert(refresh.clone(), login);
            return json_answer(
                200,
                json!({"access_token": access, "expires_in": s.expires_in,
                       "refresh_token": refresh, "refresh_token_expires_in": 15_897_600,
                       "token_type": "bearer", "scope": ""}),
            );
        }
        // The API: as the person the bearer token names.
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let Some(login) = s.tokens.get(token).cloned() else {
            return json_answer(
                401,
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            );
        };
        let person = s.people.iter().find(|p| p.login == login).unwrap().clone();
        let page: usize = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        // One item per page, so every list exercises pagination.
        let paged = |items: Vec<Value>, key: &str, total: usize| {
            let mut answer = json!({"total_count": total});
            answer[key] = Value::Array(items.into_iter().skip(page - 1).take(1).collect());
            let mut template = json_answer(200, answer);
            if page < total {
                template = template.insert_header(
                    "Link",
                    format!(
                        "<{}{}?per_page=100&page={}>; rel=\"next\", <{}{}?per_page=100&page={}>; rel=\"last\"",
                        self.base, path, page + 1, self.base, path, total
                    ),
                );
            }
            template
        };
        if path == "/user" {
            let mut user =
                rest_fixture("GET_user.200.response-with-public-profile-information.json");
            user["login"] = json!(person.login);
            user["id"] = json!(person.id);
            return json_answer(200, user);
        }
        if path == "/user/installations" {
            let template =
                rest_fixture("GET_user_installations.200.default.json")["installations"][0].clone();
            let items: Vec<Value> = person
                .installations
                .iter()
                .map(|(id, _)| {
                    let mut i = template.clone();
                    i["id"] = json!(id);
                    i
                })
                .collect();
            let total = items.len();
            return paged(items, "installations", total);
        }
        if let Some(rest) = path.strip_prefix("/user/installations/")
            && let Some(id) = rest.strip_suffix("/repositories")
        {
            let id: u64 = id.parse().unwrap_or(0);
            let template = rest_fixture(
                "GET_user_installations_installation_id_repositories.200.default.json",
            )["repositories"][0]
                .clone();
            let Some((_, repos)) = person.installations.iter().find(|(i, _)| *i == id) else {
                return json_answer(404, json!({"message": "Not Found"}));
            };
            let items: Vec<Value> = repos
                .iter()
                .map(|full_name| {
                    let mut r = template.clone();
                    let (owner, name) = full_name.split_once('/').unwrap();
                    r["full_name"] = json!(full_name);
                    r["name"] = json!(name);
                    r["owner"]["login"] = json!(owner);
                    r
                })
                .collect();
            let total = items.len();
            return paged(items, "repositories", total);
        }
        json_answer(404, json!({"message": "Not Found"}))
    }
}

/// The throwaway private key of the test GitHub App.
pub fn app_key() -> Vec<u8> {
    super::local_fixture("github-app/test-app-key.pem")
}

/// The GitHub App settings pointing at `api` (a wiremock server), with the test key.
pub fn app_config(app_id: u64, api: &str) -> verdict::github::app::GitHubAppConfig {
    verdict::github::app::GitHubAppConfig {
        app_id,
        private_key_pem: app_key(),
        api_url: api.to_string(),
    }
}

/// The App JWT GitHub checks: RS256 over {iat, exp, iss = app id}, with the App's key.
pub fn assert_app_jwt(app_id: u64, request: &Request) {
    let auth = request
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let jwt = auth.strip_prefix("Bearer ").expect("bearer JWT");
    let key = octocrab::jsonwebtoken::DecodingKey::from_rsa_pem(&super::local_fixture(
        "github-app/test-app-key.pub.pem",
    ))
    .unwrap();
    let mut validation =
        octocrab::jsonwebtoken::Validation::new(octocrab::jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_aud = false;
    let claims = octocrab::jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the JWT is signed with the App's private key")
        .claims;
    assert_eq!(claims["iss"], app_id, "iss is the App id");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(
        lifetime <= 600,
        "GitHub refuses App JWTs living over 10 minutes"
    );
}

/// The issue every pull request of a [`FakeRepository`] closes (numbered past its pull
/// requests: GitHub numbers both in one sequence).
pub const FEATURE_ISSUE: usize = 100_000;

/// A repository's history as GitHub's REST API serves it, made up of GitHub's own example
/// objects: `pulls` pull requests closing issue [`FEATURE_ISSUE`], each with `reviews` reviews
/// (changes requested first, then approvals), one review comment, `comments` comments, a
/// timeline (review request, label, forced push), a check run and a combined status on its
/// head; the even ones merged. Lists come `page_size` items a page, with `Link: rel="next"`.
pub struct FakeRepository {
    pub repo: String,
    pub installation: u64,
    pub pulls: usize,
    pub reviews: usize,
    pub comments: usize,
    pub page_size: usize,
    /// The first pull request list answer is a rate limit (reset in a second), the first
    /// timeline answer a secondary rate limit (429, `Retry-After`), and the first answer about
    /// pull request #1 a 502.
    pub rate_limit_once: bool,
    /// Requests whose path ends with this hang for ten seconds (a backfill crashes there).
    pub hang_on: Mutex<Option<String>>,
    answered_rate_limit: Mutex<bool>,
    answered_secondary_limit: Mutex<bool>,
    answered_bad_gateway: Mutex<bool>,
    templates: Templates,
}

struct Templates {
    pull: Value,
    review: Value,
    review_comment: Value,
    comment: Value,
    timeline: Value,
    check_runs: Value,
    status: Value,
    issue: Value,
}

impl FakeRepository {
    pub fn new(repo: &str, pulls: usize, reviews: usize, comments: usize) -> FakeRepository {
        let issue_payload: Value =
            serde_json::from_slice(&super::fixture("issues/opened.1.json")).unwrap();
        FakeRepository {
            repo: repo.into(),
            installation: 4242,
            pulls,
            reviews,
            comments,
            page_size: 100,
            rate_limit_once: false,
            hang_on: Mutex::new(None),
            answered_rate_limit: Mutex::new(false),
            answered_secondary_limit: Mutex::new(false),
            answered_bad_gateway: Mutex::new(false),
            templates: Templates {
                pull: rest_fixture("GET_repos_owner_repo_pulls_pull_number.200.default.json"),
                review: rest_fixture(
                    "GET_repos_owner_repo_pulls_pull_number_reviews.200.default.json",
                )[0]
                .clone(),
                review_comment: rest_fixture(
                    "GET_repos_owner_repo_pulls_pull_number_comments.200.default.json",
                )[0]
                .clone(),
                comment: rest_fixture(
                    "GET_repos_owner_repo_issues_issue_number_comments.200.default.json",
                )[0]
                .clone(),
                timeline: rest_fixture(
                    "GET_repos_owner_repo_issues_issue_number_timeline.200.default.json",
                )[1]
                .clone(),
                check_runs: rest_fixture(
                    "GET_repos_owner_repo_commits_ref_check-runs.200.default.json",
                ),
                status: rest_fixture("GET_repos_owner_repo_commits_ref_status.200.default.json"),
                issue: issue_payload["issue"].clone(),
            },
        }
    }

    /// Objects a complete backfill appends: per pull request the pull request, its reviews,
    /// one review comment, its comments, three timeline events, a check run and a status per
    /// commit read (head, and merge commit when merged); and the issue with its two comments.
    pub fn objects(&self) -> usize {
        let merged = self.pulls / 2;
        self.pulls * (1 + self.reviews + 1 + self.comments + 3 + 2) + merged * 2 + 3
    }

    fn at(minutes: i64) -> String {
        (chrono::DateTime::parse_from_rfc3339("2025-06-02T09:00:00Z").unwrap()
            + chrono::Duration::minutes(minutes))
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
    }

    fn head(n: usize) -> String {
        format!("{:040x}", 0xa000 + n)
    }

    fn merge_sha(n: usize) -> String {
        format!("{:040x}", 0xb000 + n)
    }

    fn pull(&self, n: usize) -> Value {
        let mut p = self.templates.pull.clone();
        let t = (n as i64) * 600;
        let merged = n.is_multiple_of(2);
        p["number"] = json!(n);
        p["id"] = json!(10_000 + n);
        p["title"] = json!(format!("Change {n}"));
        p["body"] = json!(format!("Part of the work.\n\nCloses #{FEATURE_ISSUE}"));
        p["user"]["login"] = json!(format!("dev-{}", n % 3));
        p["state"] = json!(if merged { "closed" } else { "open" });
        p["merged"] = json!(merged);
        p["merged_by"] = if merged {
            json!({"login": "lead-bo", "id": 77})
        } else {
            Value::Null
        };
        p["merged_at"] = if merged {
            json!(Self::at(t + 300))
        } else {
            Value::Null
        };
        p["closed_at"] = p["merged_at"].clone();
        p["merge_commit_sha"] = json!(Self::merge_sha(n));
        p["created_at"] = json!(Self::at(t));
        p["updated_at"] = json!(Self::at(t + 300));
        p["head"]["sha"] = json!(Self::head(n));
        p["base"]["repo"]["full_name"] = json!(self.repo);
        p["base"]["repo"]["private"] = json!(false);
        p["base"]["repo"]["updated_at"] = json!(Self::at(0));
        p["html_url"] = json!(format!("https://github.com/{}/pull/{n}", self.repo));
        p["labels"] = json!([]);
        p["milestone"] = Value::Null;
        p["draft"] = json!(false);
        p
    }

    fn list(
        &self,
        items: Vec<Value>,
        path: &str,
        query: &str,
        page: usize,
        base: &str,
    ) -> ResponseTemplate {
        let total = items.len().div_ceil(self.page_size).max(1);
        let body: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * self.page_size)
            .take(self.page_size)
            .collect();
        let mut t = github_answer(json!(body));
        if page < total {
            let q: String = query
                .split('&')
                .filter(|kv| !kv.starts_with("page=") && !kv.is_empty())
                .collect::<Vec<_>>()
                .join("&");
            t = t.insert_header(
                "Link",
                format!("<{base}{path}?{q}&page={}>; rel=\"next\"", page + 1),
            );
        }
        t
    }
}

/// A 200 with the headers GitHub sends with every answer.
fn github_answer(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(body)
        .insert_header("Date", "Mon, 30 Nov 2026 12:00:00 GMT")
        .insert_header("X-RateLimit-Limit", "5000")
        .insert_header("X-RateLimit-Remaining", "4999")
        .insert_header("X-GitHub-Api-Version-Selected", "2022-11-28")
}

struct RepositoryResponder {
    repo: Arc<FakeRepository>,
    base: String,
}

impl Respond for RepositoryResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let r = &self.repo;
        let t = &r.templates;
        let path = request.url.path().to_string();
        let query = request.url.query().unwrap_or("").to_string();
        let page: usize = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        if let Some(hang) = r.hang_on.lock().unwrap().as_deref()
            && path.ends_with(hang)
        {
            return github_answer(json!([])).set_delay(std::time::Duration::from_secs(10));
        }
        if path == format!("/app/installations/{}/access_tokens", r.installation) {
            let mut token = rest_fixture(
                "POST_app_installations_installation_id_access_tokens.201.default.json",
            );
            token["expires_at"] = json!("2099-01-01T00:00:00Z");
            return ResponseTemplate::new(201).set_body_json(token);
        }
        let Some(rest) = path.strip_prefix(&format!("/repos/{}", r.repo)) else {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        };
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let number = |i: usize| segments.get(i).and_then(|s| s.parse::<usize>().ok());
        match segments.as_slice() {
            ["installation"] => github_answer(
                json!({"id": r.installation, "account": {"login": r.repo.split('/').next()}}),
            ),
            ["pulls"] => {
                let mut limited = r.answered_rate_limit.lock().unwrap();
                if r.rate_limit_once && !*limited {
                    *limited = true;
                    return ResponseTemplate::new(403)
                        .insert_header("X-RateLimit-Remaining", "0")
                        .insert_header(
                            "X-RateLimit-Reset",
                            (chrono::Utc::now().timestamp() + 1).to_string(),
                        )
                        .set_body_json(json!({"message": "API rate limit exceeded"}));
                }
                let items = (1..=r.pulls).map(|n| r.pull(n)).collect();
                r.list(items, &path, &query, page, &self.base)
            }
            ["pulls", "1"]
                if r.rate_limit_once
                    && !std::mem::replace(&mut *r.answered_bad_gateway.lock().unwrap(), true) =>
            {
                ResponseTemplate::new(502).set_body_string("Bad Gateway")
            }
            ["pulls", _] => github_answer(r.pull(number(1).unwrap_or(0))),
            ["issues", _, "timeline"]
                if r.rate_limit_once
                    && !std::mem::replace(
                        &mut *r.answered_secondary_limit.lock().unwrap(),
                        true,
                    ) =>
            {
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "1")
                    .set_body_json(json!({"message": "You have exceeded a secondary rate limit."}))
            }
            ["pulls", _, "reviews"] => {
                let n = number(1).unwrap_or(0);
                let items = (0..r.reviews)
                    .map(|i| {
                        let mut v = t.review.clone();
                        v["id"] = json!(n * 100 + i);
                        v["user"]["login"] = json!(format!("rev-{i}"));
                        v["state"] = json!(if i == 0 {
                            "CHANGES_REQUESTED"
                        } else {
                            "APPROVED"
                        });
                        v["commit_id"] = json!(FakeRepository::head(n));
                        v["submitted_at"] =
                            json!(FakeRepository::at(n as i64 * 600 + 10 + i as i64));
                        v["body"] = json!(format!("Review {i} of change {n}"));
                        v
                    })
                    .collect();
                r.list(items, &path, &query, page, &self.base)
            }
            ["pulls", _, "comments"] => {
                let n = number(1).unwrap_or(0);
                let mut v = t.review_comment.clone();
                v["id"] = json!(n * 1000 + 1);
                v["commit_id"] = json!(FakeRepository::head(n));
                v["created_at"] = json!(FakeRepository::at(n as i64 * 600 + 20));
                v["updated_at"] = v["created_at"].clone();
                r.list(vec![v], &path, &query, page, &self.base)
            }
            ["issues", _, "comments"] => {
                let n = number(1).unwrap_or(0);
                let count = if n == FEATURE_ISSUE { 2 } else { r.comments };
                let items = (0..count)
                    .map(|i| {
                        let mut v = t.comment.clone();
                        v["id"] = json!(n * 1000 + 100 + i);
                        v["body"] = json!(format!("Comment {i} on #{n}"));
                        v["user"]["login"] = json!(if n == FEATURE_ISSUE {
                            "maria-pm"
                        } else {
                            "dev-0"
                        });
                        v["created_at"] = json!(FakeRepository::at(n as i64 * 600 + 30 + i as i64));
                        v["updated_at"] = v["created_at"].clone();
                        v["html_url"] = json!(format!(
                            "https://github.com/{}/{}/{n}#issuecomment-{}",
                            r.repo,
                            if n == FEATURE_ISSUE { "issues" } else { "pull" },
                            n * 1000 + 100 + i
                        ));
                        v
                    })
                    .collect();
                r.list(items, &path, &query, page, &self.base)
            }
            ["issues", _, "timeline"] => {
                let n = number(1).unwrap_or(0);
                let event = |i: usize, event: &str| {
                    let mut v = t.timeline.clone();
                    v["id"] = json!(n * 10_000 + i);
                    v["event"] = json!(event);
                    v["actor"]["login"] = json!(format!("dev-{}", n % 3));
                    v["created_at"] = json!(FakeRepository::at(n as i64 * 600 + 1 + i as i64));
                    v
                };
                let mut requested = event(1, "review_requested");
                requested["requested_reviewer"] = json!({"login": "rev-0"});
                let mut labeled = event(2, "labeled");
                labeled["label"] = json!({"name": "checkout", "color": "f29513"});
                let forced = event(3, "head_ref_force_pushed");
                r.list(
                    vec![requested, labeled, forced],
                    &path,
                    &query,
                    page,
                    &self.base,
                )
            }
            ["commits", sha, "check-runs"] => {
                let mut runs = t.check_runs.clone();
                let (n, merge) = r.commit(sha);
                runs["total_count"] = json!(1);
                runs["check_runs"][0]["id"] = json!(n * 10 + usize::from(merge));
                runs["check_runs"][0]["head_sha"] = json!(sha);
                runs["check_runs"][0]["status"] = json!("completed");
                runs["check_runs"][0]["conclusion"] = json!("success");
                runs["check_runs"][0]["completed_at"] =
                    json!(FakeRepository::at(n as i64 * 600 + 200));
                runs["check_runs"][0]["pull_requests"] =
                    json!([{"number": n, "head": {"sha": sha}}]);
                github_answer(runs)
            }
            ["commits", sha, "status"] => {
                let (n, merge) = r.commit(sha);
                let mut status = t.status.clone();
                status["sha"] = json!(sha);
                status["state"] = json!("success");
                let mut one = status["statuses"][0].clone();
                one["id"] = json!(50_000 + n * 10 + usize::from(merge));
                one["state"] = json!("success");
                status["statuses"] = json!([one]);
                github_answer(status)
            }
            ["issues", n] if n.parse() == Ok(FEATURE_ISSUE) => {
                let mut issue = t.issue.clone();
                issue["number"] = json!(FEATURE_ISSUE);
                issue["title"] = json!("Saved payment methods");
                issue["created_at"] = json!(FakeRepository::at(-60));
                issue["updated_at"] = json!(FakeRepository::at(-60));
                issue["closed_at"] = Value::Null;
                issue["state"] = json!("open");
                github_answer(issue)
            }
            _ => ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
        }
    }
}

impl FakeRepository {
    /// The pull request a commit belongs to, and whether it is its merge commit.
    fn commit(&self, sha: &str) -> (usize, bool) {
        (1..=self.pulls)
            .find_map(|n| {
                (Self::head(n) == sha)
                    .then_some((n, false))
                    .or((Self::merge_sha(n) == sha).then_some((n, true)))
            })
            .unwrap_or((0, false))
    }

    /// Serves this repository on `server` (with the installation token endpoint).
    pub async fn mount(self: &Arc<Self>, server: &MockServer) {
        Mock::given(any())
            .respond_with(RepositoryResponder {
                repo: self.clone(),
                base: server.uri(),
            })
            .mount(server)
            .await;
    }
}
