//! Signing in and out: GitHub's web application flow (with PKCE) for people, the admin token
//! for operators. A sign-in is complete or it did not happen: the session is created only once
//! GitHub has answered every question (tokens, who, which repositories).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::sessions::{
    SESSION_COOKIE, SIGN_IN_COOKIE, SIGN_IN_VALID, cookie_value, pkce_challenge, random_token,
    token_hash,
};
use super::{Access, Viewer, with_cookies};
use crate::github::sign_in::SignInError;
use crate::web::error::WebError;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInHtml {
    viewer: Viewer,
    api_url: String,
    title: &'static str,
    message: String,
    retry: Option<String>,
}

#[derive(Template)]
#[template(path = "operator.html")]
struct OperatorHtml {
    viewer: Viewer,
    api_url: String,
    message: Option<String>,
}

/// A page explaining why the sign-in did not happen, with a way to try again.
fn problem(
    viewer: &Viewer,
    status: StatusCode,
    title: &'static str,
    message: String,
    next: &str,
) -> Response {
    let page = SignInHtml {
        viewer: viewer.clone(),
        api_url: String::new(),
        title,
        message,
        retry: viewer
            .sign_in
            .then(|| format!("/login?next={}", urlencode(next))),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A path on this site to return to after signing in: same origin only, so `next` cannot send
/// anyone elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 2000
                && !p.chars().any(|c| c.is_control() || c == '\\')
                && !p.starts_with("/login") =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// `GET /login?next=/path`: off to GitHub.
pub async fn login(
    State(access): State<Arc<Access>>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(params.get("next").map(String::as_str));
    let Some(client) = &access.sign_in else {
        return problem(
            &viewer,
            StatusCode::NOT_FOUND,
            "Sign-in is not set up",
            "Sign-in with GitHub is not set up on this verdict: its operator sets GITHUB_CLIENT_ID \
             and GITHUB_CLIENT_SECRET (README, \"Sign in with GitHub\"). Public repositories are \
             shown to everyone."
                .into(),
            &next,
        );
    };
    let (state, browser, verifier) = (random_token(), random_token(), random_token());
    if let Err(e) = access
        .sessions
        .start_sign_in(&state, &browser, &verifier, &next)
        .await
    {
        return problem(
            &viewer,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            format!("verdict's database could not record the sign-in ({e}); try again shortly"),
            &next,
        );
    }
    let redirect_uri = format!("{}/login/callback", access.public_url);
    let to = client.authorize_url(&redirect_uri, &state, &pkce_challenge(&verifier));
    with_cookies(
        Redirect::to(&to),
        &[access.sessions.sign_in_cookie(&browser)],
    )
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /login/callback?code=…&state=…`: back from GitHub.
pub async fn callback(
    State(access): State<Arc<Access>>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let Some(client) = &access.sign_in else {
        return problem(
            &viewer,
            StatusCode::NOT_FOUND,
            "Sign-in is not set up",
            "Sign-in with GitHub is not set up on this verdict.".into(),
            "/",
        );
    };
    let clear_browser = access.sessions.cleared(SIGN_IN_COOKIE, "/login");
    // The sign-in this answer belongs to: started in this browser, not used before, recent.
    let attempt = match back.state.as_deref() {
        Some(state) => access.sessions.take_sign_in(state).await.ok().flatten(),
        None => None,
    };
    let browser = cookie_value(&headers, SIGN_IN_COOKIE).map(token_hash);
    let attempt = attempt.filter(|a| {
        browser.is_some_and(|b| super::operator::constant_time_eq(&b, &a.browser_hash))
            && a.created_at + SIGN_IN_VALID > Utc::now()
    });
    let Some(attempt) = attempt else {
        return with_cookies(
            problem(
                &viewer,
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                "This sign-in link has expired, was used already, or was started in another \
                 browser. Nothing was signed in; start again."
                    .into(),
                "/",
            ),
            &[clear_browser],
        );
    };
    let next = attempt.next_path;
    if let Some(error) = back.error {
        let why = back.error_description.unwrap_or(error);
        return with_cookies(
            problem(
                &viewer,
                StatusCode::BAD_REQUEST,
                "GitHub did not sign you in",
                format!("GitHub answered: {why}. Nothing was signed in."),
                &next,
            ),
            &[clear_browser],
        );
    }
    let Some(code) = back.code.filter(|c| !c.is_empty()) else {
        return with_cookies(
            problem(
                &viewer,
                StatusCode::BAD_REQUEST,
                "GitHub did not sign you in",
                "GitHub sent no authorization code back. Nothing was signed in.".into(),
                &next,
            ),
            &[clear_browser],
        );
    };
    let redirect_uri = format!("{}/login/callback", access.public_url);
    let signed_in = async {
        let tokens = client
            .exchange(&code, &attempt.pkce_verifier, &redirect_uri)
            .await?;
        let user = client.user(&tokens.access_token).await?;
        let readable = client.readable_repositories(&tokens.access_token).await?;
        Ok::<_, SignInError>((tokens, user, readable))
    }
    .await;
    let (tokens, user, readable) = match signed_in {
        Ok(done) => done,
        Err(e @ SignInError::Unavailable(_)) => {
            return with_cookies(
                problem(
                    &viewer,
                    StatusCode::BAD_GATEWAY,
                    "GitHub could not be reached",
                    format!("{e}. Nothing was signed in; try again in a moment."),
                    &next,
                ),
                &[clear_browser],
            );
        }
        Err(e) => {
            return with_cookies(
                problem(
                    &viewer,
                    StatusCode::BAD_REQUEST,
                    "GitHub did not sign you in",
                    format!("{e}. Nothing was signed in."),
                    &next,
                ),
                &[clear_browser],
            );
        }
    };
    let id = match access
        .sessions
        .create_person(&user, &tokens, &readable)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            return problem(
                &viewer,
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                format!("verdict's database could not keep the session ({e}); try again shortly"),
                &next,
            );
        }
    };
    tracing::info!(login = %user.login, repositories = readable.len(), "signed in with GitHub");
    with_cookies(
        Redirect::to(&next),
        &[access.sessions.cookie(&id), clear_browser],
    )
}

/// `POST /logout`: ends the session on the server and forgets the cookie.
pub async fn logout(State(access): State<Arc<Access>>, headers: HeaderMap) -> Response {
    if let Some(cookie) = cookie_value(&headers, SESSION_COOKIE)
        && let Err(e) = access.sessions.end_cookie(cookie).await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("could not end the session ({e}); try again"),
        )
            .into_response();
    }
    with_cookies(
        Redirect::to("/"),
        &[access.sessions.cleared(SESSION_COOKIE, "/")],
    )
}

#[derive(Deserialize)]
pub struct Back {
    next: Option<String>,
}

/// `POST /login/refresh`: ask GitHub again, now, which repositories this person can read.
pub async fn refresh(
    State(access): State<Arc<Access>>,
    headers: HeaderMap,
    Form(back): Form<Back>,
) -> Response {
    let next = safe_next(back.next.as_deref());
    if let Some(cookie) = cookie_value(&headers, SESSION_COOKIE) {
        let _ = sqlx::query("UPDATE sessions SET readable_at = NULL WHERE id_hash = $1")
            .bind(&token_hash(cookie)[..])
            .execute(&access.pool)
            .await;
    }
    Redirect::to(&next).into_response()
}

/// `GET /operator`: the admin-token form.
pub async fn operator_form(viewer: Viewer) -> Response {
    render_operator(viewer, None, StatusCode::OK)
}

fn render_operator(viewer: Viewer, message: Option<String>, status: StatusCode) -> Response {
    let page = OperatorHtml {
        viewer,
        api_url: String::new(),
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

/// `POST /operator`: the admin token, once; the browser gets an operator session.
pub async fn operator_sign_in(
    State(access): State<Arc<Access>>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<TokenForm>,
) -> Response {
    match access.check_operator_token(peer.ip(), &form.token) {
        Ok(()) => match access.sessions.create_operator().await {
            Ok(id) => with_cookies(Redirect::to("/"), &[access.sessions.cookie(&id)]),
            Err(e) => render_operator(
                viewer,
                Some(format!("could not keep the session ({e}); try again")),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        },
        Err(err) => {
            let status = err.status();
            let message = match err {
                WebError::Unauthorized(_) if access.operator_token.is_some() => {
                    "That is not the operator token; check VERDICT_ADMIN_TOKEN and try again."
                        .to_string()
                }
                WebError::Unauthorized(_) => {
                    "This verdict has no operator token; start it with VERDICT_ADMIN_TOKEN set."
                        .to_string()
                }
                other => other.to_string(),
            };
            render_operator(viewer, Some(message), status)
        }
    }
}
