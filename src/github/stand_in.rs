//! A stand-in for GitHub's sign-in, for `verdict demo` and the browser test: it speaks the
//! endpoints verdict uses (the authorization page, the token endpoint, `/user` and the person's
//! installations and repositories) in GitHub's shapes, for a few made-up people. Its
//! authorization page lets whoever is trying the demo choose who to be. It checks what GitHub
//! checks: codes are single-use and must come with the PKCE verifier of their challenge.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Someone who can sign in through the stand-in.
#[derive(Debug, Clone)]
pub struct StandInPerson {
    pub login: String,
    pub id: i64,
    /// What the authorization page says about them.
    pub about: String,
    /// `owner/name` of the repositories they can read through the App.
    pub repositories: Vec<String>,
}

#[derive(Default)]
struct Shared {
    people: Vec<StandInPerson>,
    /// code → (login, PKCE challenge)
    codes: HashMap<String, (String, String)>,
    /// access or refresh token → login
    tokens: HashMap<String, String>,
    issued: u64,
}

type S = Arc<Mutex<Shared>>;

/// A running stand-in.
pub struct StandIn {
    /// Where it listens: both `GITHUB_URL` and `GITHUB_API_URL` for verdict.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Starts the stand-in on `listen` (port 0: any free port).
    pub async fn start(listen: SocketAddr, people: Vec<StandInPerson>) -> std::io::Result<StandIn> {
        let state: S = Arc::new(Mutex::new(Shared {
            people,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(user))
            .route("/user/installations", get(installations))
            .route("/user/installations/{id}/repositories", get(repositories))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(StandIn { url, task })
    }

    /// The sign-in settings that point verdict here.
    pub fn sign_in_config(&self) -> super::sign_in::SignInConfig {
        super::sign_in::SignInConfig {
            client_id: "Iv1.verdict-demo".into(),
            client_secret: "verdict-demo-client-secret".into(),
            github_url: self.url.clone(),
            api_url: self.url.clone(),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn random() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("randomness");
    hex::encode(bytes)
}

/// The authorization page: who do you want to be?
async fn authorize(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (Some(redirect), Some(state), Some(challenge)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri, state and code_challenge are required",
        )
            .into_response();
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return (
            StatusCode::BAD_REQUEST,
            "code_challenge_method must be S256",
        )
            .into_response();
    }
    let mut shared = s.lock().unwrap();
    let mut choices = String::new();
    let people = shared.people.clone();
    for p in &people {
        let code = random();
        shared
            .codes
            .insert(code.clone(), (p.login.clone(), challenge.clone()));
        let back = format!(
            "{redirect}?code={code}&state={}",
            form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
        );
        choices.push_str(&format!(
            r#"<li><a class="who" id="as-{login}" href="{href}">Sign in as <b>@{login}</b></a><br><span>{about}</span></li>"#,
            login = escape(&p.login),
            href = escape(&back),
            about = escape(&p.about),
        ));
    }
    let cancel = format!(
        "{redirect}?error=access_denied&error_description={}&state={}",
        form_urlencoded::byte_serialize(b"The user has denied your application access.")
            .collect::<String>(),
        form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in · GitHub stand-in</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1f2328}}
li{{margin:1rem 0;list-style:none;border:1px solid #d1d9e0;border-radius:.5rem;padding:.8rem}} a.who{{font-size:1.1em}} span{{color:#59636e}}</style></head>
<body><h1>Authorize verdict</h1>
<p>This is <b>verdict demo</b>'s stand-in for GitHub's sign-in page (nothing leaves this machine). On GitHub you would sign in as yourself; here, choose who to be:</p>
<ul>{choices}</ul><p><a id="cancel" href="{cancel}">Cancel</a></p></body></html>"#,
        cancel = escape(&cancel)
    ))
    .into_response()
}

/// The token endpoint: a code (with its PKCE verifier) or a refresh token for new tokens.
async fn token(State(s): State<S>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut shared = s.lock().unwrap();
    let refused = |why: &str| {
        Json(json!({"error": "bad_verification_code", "error_description": why})).into_response()
    };
    let login = if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
        match f.get("refresh_token").and_then(|t| shared.tokens.remove(t)) {
            Some(login) => login,
            None => return refused("The refresh token passed is incorrect or expired."),
        }
    } else {
        let Some((login, challenge)) = f.get("code").and_then(|c| shared.codes.remove(c)) else {
            return refused("The code passed is incorrect or expired.");
        };
        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
        if B64URL.encode(Sha256::digest(verifier.as_bytes())) != challenge {
            return refused("The code_verifier does not match the code_challenge.");
        }
        login
    };
    shared.issued += 1;
    let access = format!("ghu_demo_{login}_{}", shared.issued);
    let refresh = format!("ghr_demo_{login}_{}", shared.issued);
    shared.tokens.insert(access.clone(), login.clone());
    shared.tokens.insert(refresh.clone(), login);
    Json(
        json!({"access_token": access, "expires_in": 28_800, "refresh_token": refresh,
                "refresh_token_expires_in": 15_897_600, "token_type": "bearer", "scope": ""}),
    )
    .into_response()
}

fn person(s: &S, headers: &HeaderMap) -> Option<StandInPerson> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let shared = s.lock().unwrap();
    let login = shared.tokens.get(token)?;
    shared.people.iter().find(|p| &p.login == login).cloned()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials"})),
    )
        .into_response()
}

async fn user(State(s): State<S>, headers: HeaderMap) -> Response {
    match person(&s, &headers) {
        Some(p) => Json(json!({"login": p.login, "id": p.id, "type": "User",
                               "html_url": format!("https://github.com/{}", p.login)}))
        .into_response(),
        None => unauthorized(),
    }
}

/// One installation (the demo App on account `acme`).
async fn installations(State(s): State<S>, headers: HeaderMap) -> Response {
    match person(&s, &headers) {
        Some(_) => Json(json!({"total_count": 1, "installations": [
            {"id": 4242, "account": {"login": "acme", "id": 4007, "type": "Organization"},
             "app_id": 1, "target_type": "Organization"}]}))
        .into_response(),
        None => unauthorized(),
    }
}

async fn repositories(State(s): State<S>, headers: HeaderMap, Path(_id): Path<u64>) -> Response {
    match person(&s, &headers) {
        Some(p) => Json(json!({
            "total_count": p.repositories.len(),
            "repositories": p.repositories.iter().map(|r| json!({
                "full_name": r, "name": r.split('/').nth(1), "private": r != crate::story::REPO
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        None => unauthorized(),
    }
}

/// The demo's two people: one who can read the private repository, one who cannot.
pub fn demo_people() -> Vec<StandInPerson> {
    use crate::story::{PRIVATE_REPO, REPO};
    vec![
        StandInPerson {
            login: "maria-pm".into(),
            id: 9_001,
            about: format!("product manager; can read {REPO} and the private {PRIVATE_REPO}"),
            repositories: vec![REPO.into(), PRIVATE_REPO.into()],
        },
        StandInPerson {
            login: "dev-kai".into(),
            id: 9_002,
            about: format!("developer; can read {REPO} only"),
            repositories: vec![REPO.into()],
        },
    ]
}
