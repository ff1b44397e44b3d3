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
