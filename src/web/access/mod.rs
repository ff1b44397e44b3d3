//! Who is looking, and what they may see: the one place every page and API route goes
//! through. A middleware ([`resolve`]) names the viewer of each request (a bearer operator
//! token, a session cookie, or nobody), works out the repositories they may see, checks that
//! forms posted with a session carry its CSRF token and come from verdict's own origin, and
//! hands the [`Viewer`] to the handler. Handlers take the viewer as an extractor, which fails
//! loudly for a route outside the middleware, so none can forget it.
//!
//! **The visibility rule.** A viewer sees a repository's pages, pull requests, features,
//! records, findings, reports, search results and proofs if and only if the repository is
//! public now, or is in the set GitHub says they can read through the App's installations, or
//! they are an operator. "Now" is the repository's current state (`repositories.private`, the
//! newest observation by GitHub's clock): making it private hides its whole history at once.
//! Entries that belong to no repository are for operators only. Anything a viewer may not see
//! answers exactly like something that does not exist.

pub mod operator;
pub mod sessions;
pub mod sign_in;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sqlx::PgPool;

use super::error::WebError;
use crate::github::sign_in::{SignInClient, SignInError};
use operator::{OperatorToken, Throttle};
use sessions::{SESSION_COOKIE, Session, Sessions, cookie_value};

/// Who the viewer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    /// Signed in with GitHub.
    Person {
        login: String,
        id: i64,
    },
    /// Sees everything: the admin token (as a bearer token or through `/operator`), or a person
    /// listed in `VERDICT_OPERATORS`.
    Operator {
        login: Option<String>,
        id: Option<i64>,
    },
}

/// The viewer of one request and what they may see.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub identity: Identity,
    /// Canonical `owner/name` of every repository this viewer may see; `None`: everything.
    visible: Option<Arc<Vec<String>>>,
    /// The session's CSRF token, which forms carry; `None` without a session cookie.
    pub csrf: Option<String>,
    /// Whether sign-in with GitHub is set up on this verdict.
    pub sign_in: bool,
    /// The path (and query) of the page being viewed: where signing in returns to.
    pub here: String,
    /// GitHub's web address: only addresses on it, from payloads, become links.
    github_url: Arc<str>,
}

impl Viewer {
    /// A viewer who sees only public repositories (pages rendered outside a request).
    pub fn anonymous(sign_in: bool) -> Viewer {
        Viewer {
            identity: Identity::Anonymous,
            visible: Some(Arc::default()),
            csrf: None,
            sign_in,
            here: "/".into(),
            github_url: crate::github::names::GITHUB_URL.into(),
        }
    }

    /// `url`, from a payload, if it may become a link: an http(s) address on GitHub's host
    /// (see [`crate::github::names::github_link`]).
    pub fn github_link(&self, url: &str) -> Option<String> {
        crate::github::names::github_link(url, &self.github_url)
    }

    /// GitHub's web address (`https://github.com`, or an Enterprise Server's), without a
    /// trailing slash, for links verdict builds itself.
    pub fn github_url_base(&self) -> String {
        self.github_url.trim_end_matches('/').to_string()
    }

    /// The address that signs in and comes back here.
    pub fn sign_in_url(&self) -> String {
        let next: String = form_urlencoded::byte_serialize(self.here.as_bytes()).collect();
        format!("/login?next={next}")
    }

    pub fn is_operator(&self) -> bool {
        matches!(self.identity, Identity::Operator { .. })
    }

    pub fn is_anonymous(&self) -> bool {
        self.identity == Identity::Anonymous
    }

    /// The GitHub login of a signed-in person (operators signed in with GitHub too).
    pub fn login(&self) -> Option<&str> {
        match &self.identity {
            Identity::Person { login, .. } => Some(login),
            Identity::Operator { login, .. } => login.as_deref(),
            Identity::Anonymous => None,
        }
    }

    /// The GitHub user id of a signed-in person.
    pub fn user_id(&self) -> Option<i64> {
        match &self.identity {
            Identity::Person { id, .. } => Some(*id),
            Identity::Operator { id, .. } => *id,
            Identity::Anonymous => None,
        }
    }

    /// Every repository this viewer may see, for SQL as `$n::text[] IS NULL OR repo = ANY($n)`;
    /// `None` when they see everything.
    pub fn visible(&self) -> Option<&[String]> {
        self.visible.as_deref().map(Vec::as_slice)
    }

    /// Whether this viewer may see repository `repo` (`None`: something of no repository,
    /// which only operators see).
    pub fn may_see(&self, repo: Option<&str>) -> bool {
        match (&self.visible, repo) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(visible), Some(repo)) => visible.iter().any(|v| v == repo),
        }
    }

    /// What a "not found" adds for someone who might see more once signed in.
    pub fn not_found_hint(&self) -> &'static str {
        match (&self.identity, self.sign_in) {
            (Identity::Anonymous, true) => " (sign in with GitHub to see private repositories)",
            (Identity::Anonymous, false) => " (private repositories are shown to operators only)",
            _ => "",
        }
    }
}

/// A `Viewer` comes from the access middleware; a route outside it fails loudly rather than
/// showing anything.
impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Viewer, WebError> {
        parts.extensions.get::<Viewer>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a route outside the access middleware");
            WebError::Internal("this page is not behind verdict's access check".into())
        })
    }
}

/// What the access middleware needs.
pub struct Access {
    pub pool: PgPool,
    pub sessions: Sessions,
    /// `None`: sign-in with GitHub is not set up.
    pub sign_in: Option<SignInClient>,
    pub operator_token: Option<OperatorToken>,
    /// Lower-case GitHub logins who are operators.
    pub operators: Vec<String>,
    /// Where verdict's pages are reachable, without a trailing slash (callback URL, origin).
    pub public_url: String,
    pub throttle: Throttle,
    /// GitHub's web address (links from payloads must point there).
    pub github_url: Arc<str>,
}

/// How sign-in and operator access are configured.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    pub sign_in: Option<crate::github::sign_in::SignInConfig>,
    /// `VERDICT_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// `VERDICT_OPERATORS`: GitHub logins who see everything.
    pub operators: Vec<String>,
    /// `GITHUB_URL`, GitHub's web address: the only host whose addresses from payloads become
    /// links. `None`: `https://github.com`.
    pub github_url: Option<String>,
}

impl Access {
    pub fn new(pool: PgPool, config: &AccessConfig, public_url: &str) -> Access {
        let public_url = public_url.trim_end_matches('/').to_string();
        Access {
            sessions: Sessions::new(
                pool.clone(),
                config
                    .sign_in
                    .as_ref()
                    .map(|s| sessions::Sealer::new(&s.client_secret)),
                public_url.starts_with("https://"),
            ),
            pool,
            sign_in: config.sign_in.clone().map(SignInClient::new),
            operator_token: OperatorToken::new(config.admin_token.as_deref()),
            operators: config
                .operators
                .iter()
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty())
                .collect(),
            public_url,
            throttle: Throttle::default(),
            github_url: config
                .github_url
                .as_deref()
                .unwrap_or(crate::github::names::GITHUB_URL)
                .trim_end_matches('/')
                .into(),
        }
    }

    fn is_operator_login(&self, login: &str) -> bool {
        self.operators.iter().any(|o| o.eq_ignore_ascii_case(login))
    }

    /// Checks a candidate admin token from `peer`, throttling wrong guesses.
    pub fn check_operator_token(&self, peer: IpAddr, candidate: &str) -> Result<(), WebError> {
        if let Some(wait) = self.throttle.wait(peer) {
            return Err(WebError::TooManyAttempts(format!(
                "too many wrong operator tokens from this address; wait {} seconds",
                wait.as_secs().max(1)
            )));
        }
        match &self.operator_token {
            Some(t) if t.matches(candidate) => {
                self.throttle.succeeded(peer);
                Ok(())
            }
            Some(_) => {
                self.throttle.failed(peer);
                Err(WebError::Unauthorized(
                    "wrong operator token: send the value of VERDICT_ADMIN_TOKEN".into(),
                ))
            }
            None => Err(WebError::Unauthorized(
                "this verdict has no operator token; set VERDICT_ADMIN_TOKEN to enable one".into(),
            )),
        }
    }

    /// The viewer a session makes, renewing its GitHub tokens and re-reading what the person
    /// can read when due. `None`: the session has ended (GitHub no longer accepts it).
    async fn session_identity(&self, session: Session) -> Result<Option<Session>, WebError> {
        let now = Utc::now();
        let (Some(client), true) = (
            &self.sign_in,
            session.kind == "person" && (session.access_due(now) || session.readable_due(now)),
        ) else {
            return Ok(Some(session));
        };
        // One request at a time renews a session (refresh tokens are single-use).
        let mut tx = self.pool.begin().await?;
        let Some(mut session) = self.sessions.lock(&mut tx, &session.id_hash).await? else {
            return Ok(None);
        };
        let ended =
            |e: &SignInError| matches!(e, SignInError::Unauthorized | SignInError::Refused(_));
        if session.access_due(now) {
            let refresh = session
                .tokens
                .as_ref()
                .and_then(|t| t.refresh_token.clone());
            let renewed = match refresh {
                Some(refresh) => client.refresh(&refresh).await,
                None => Err(SignInError::Unauthorized),
            };
            match renewed {
                Ok(tokens) => {
                    self.sessions
                        .store_tokens(&mut tx, &session.id_hash, &tokens)
                        .await?;
                    session.tokens = Some(tokens);
                }
                Err(e) if ended(&e) => {
                    tracing::info!(login = ?session.login, error = %e, "session ended: GitHub no longer accepts its token");
                    self.sessions.end(&mut tx, &session.id_hash).await?;
                    tx.commit().await?;
                    return Ok(None);
                }
                Err(e) => {
                    // GitHub is down: keep what is known; the next request tries again.
                    tracing::warn!(error = %e, "could not renew a session's GitHub token");
                    tx.commit().await?;
                    return Ok(Some(session));
                }
            }
        }
        if session.readable_due(now) {
            let token = session
                .tokens
                .as_ref()
                .map(|t| t.access_token.clone())
                .unwrap_or_default();
            match client.readable_repositories(&token).await {
                Ok(readable) => {
                    self.sessions
                        .store_readable(&mut tx, &session.id_hash, Some(&readable), now)
                        .await?;
                    session.readable = readable.iter().map(|r| r.to_ascii_lowercase()).collect();
                    session.readable_at = Some(now);
                }
                Err(e) if ended(&e) => {
                    tracing::info!(login = ?session.login, error = %e, "session ended: GitHub no longer accepts its token");
                    self.sessions.end(&mut tx, &session.id_hash).await?;
                    tx.commit().await?;
                    return Ok(None);
                }
                Err(e) => {
                    // Keep the last known set, and ask again in a minute rather than on every
                    // request while GitHub is down.
                    tracing::warn!(error = %e, "could not re-read what a person can read; keeping the last answer");
                    let retry = now - sessions::READABLE_FRESH + chrono::Duration::minutes(1);
                    self.sessions
                        .store_readable(&mut tx, &session.id_hash, None, retry)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(Some(session))
    }

    /// Canonical names of the repositories visible to someone who can read `readable`
    /// (lower-case `owner/name`s): the public ones and those.
    async fn visible(&self, readable: &[String]) -> Result<Arc<Vec<String>>, WebError> {
        let repos: Vec<String> = sqlx::query_scalar(
            "SELECT repo FROM repositories WHERE NOT private OR lower(repo) = ANY($1) ORDER BY repo",
        )
        .bind(readable)
        .fetch_all(&self.pool)
        .await?;
        Ok(Arc::new(repos))
    }

    /// The viewer of a request with these headers.
    async fn viewer(&self, headers: &HeaderMap, peer: IpAddr) -> Result<Viewer, WebError> {
        let sign_in = self.sign_in.is_some();
        if let Some(auth) = headers.get(AUTHORIZATION) {
            let bearer = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    WebError::Unauthorized(
                        "the Authorization header must be `Bearer <VERDICT_ADMIN_TOKEN>`".into(),
                    )
                })?;
            self.check_operator_token(peer, bearer)?;
            return Ok(Viewer {
                identity: Identity::Operator {
                    login: None,
                    id: None,
                },
                visible: None,
                csrf: None,
                sign_in,
                here: String::new(),
                github_url: self.github_url.clone(),
            });
        }
        let session = match cookie_value(headers, SESSION_COOKIE) {
            Some(cookie) => match self.sessions.find(cookie).await? {
                Some(session) => self.session_identity(session).await?,
                None => None,
            },
            None => None,
        };
        let Some(session) = session else {
            return Ok(Viewer {
                visible: Some(self.visible(&[]).await?),
                github_url: self.github_url.clone(),
                ..Viewer::anonymous(sign_in)
            });
        };
        let identity = match (&session.kind[..], session.login, session.user_id) {
            ("person", Some(login), Some(id)) if self.is_operator_login(&login) => {
                Identity::Operator {
                    login: Some(login),
                    id: Some(id),
                }
            }
            ("person", Some(login), Some(id)) => Identity::Person { login, id },
            _ => Identity::Operator {
                login: None,
                id: None,
            },
        };
        let visible = match identity {
            Identity::Operator { .. } => None,
            _ => Some(self.visible(&session.readable).await?),
        };
        Ok(Viewer {
            identity,
            visible,
            csrf: Some(session.csrf),
            sign_in,
            here: String::new(),
            github_url: self.github_url.clone(),
        })
    }

    /// The origin verdict's own pages are served from.
    fn own_origin(&self) -> Option<String> {
        url::Url::parse(&self.public_url)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }
}

/// Who may see a log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Whoever may see this repository.
    Repository(String),
    /// Whoever may see the log at all: statements about the log itself (key rotations).
    Log,
    /// Operators only: entries of no repository (installation events, reconciliations,
    /// unreadable bodies).
    Operators,
}

/// Who may see a log entry of `kind`, with its `hook_id` field and `body`.
pub fn entry_audience(kind: &str, hook_id: Option<&str>, body: &[u8]) -> Audience {
    use crate::log::entry::{KIND_GITHUB_API, KIND_KEY_ROTATION};
    let repository = match kind {
        KIND_KEY_ROTATION => return Audience::Log,
        // An object read from GitHub's API: the repository its request URL names.
        KIND_GITHUB_API => hook_id.and_then(|url| crate::projections::api::repo_and_number(url).0),
        _ => entry_repository(kind, body),
    };
    repository.map_or(Audience::Operators, Audience::Repository)
}

impl Viewer {
    /// Whether this viewer may see an entry of log `log_id` meant for `audience`.
    pub async fn may_see_entry(
        &self,
        pool: &PgPool,
        log_id: i64,
        audience: &Audience,
    ) -> sqlx::Result<bool> {
        Ok(match audience {
            Audience::Repository(repo) => self.may_see(Some(repo)),
            Audience::Operators => self.may_see(None),
            Audience::Log => {
                self.visible.is_none()
                    || sqlx::query_scalar::<_, String>(
                        "SELECT repo FROM repositories WHERE log_id = $1",
                    )
                    .bind(log_id)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .any(|r| self.may_see(Some(r)))
            }
        })
    }
}

/// The repository a log entry belongs to, for the visibility rule: the `repository.full_name`
/// of a GitHub payload, or of one of verdict's own entries (findings, their withdrawals and
/// acknowledgements carry the same member). `None` for entries of no repository (installation
/// events, unreadable bodies): those are for operators only.
pub fn entry_repository(kind: &str, body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        full_name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct WithRepository {
        repository: Option<Named>,
    }
    use crate::log::entry::{
        KIND_ACK, KIND_FINDING, KIND_FINDING_WITHDRAWN, KIND_GITHUB_DELIVERY, KIND_REDACTION,
    };
    if ![
        KIND_GITHUB_DELIVERY,
        KIND_FINDING,
        KIND_FINDING_WITHDRAWN,
        KIND_ACK,
        KIND_REDACTION,
    ]
    .contains(&kind)
    {
        return None;
    }
    let parsed: WithRepository = serde_json::from_slice(body).ok().or_else(|| {
        // GitHub's form-encoded deliveries carry the JSON in `payload`.
        let (_, payload) = form_urlencoded::parse(body).find(|(k, _)| k == "payload")?;
        serde_json::from_str(&payload).ok()
    })?;
    parsed
        .repository?
        .full_name
        .filter(|n| crate::github::names::is_full_name(n))
}

/// Largest form body the CSRF check reads.
const MAX_FORM: usize = 64 * 1024;

/// The access middleware: every page and API route goes through it (see the module's
/// documentation).
pub async fn resolve(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let here = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let viewer = match access.viewer(request.headers(), peer).await {
        Ok(viewer) => Viewer { here, ..viewer },
        Err(err) => {
            return super::respond_error(
                request.uri(),
                &Viewer::anonymous(access.sign_in.is_some()),
                err,
            );
        }
    };
    let (mut parts, body) = request.into_parts();
    let body = if parts.method == Method::GET || parts.method == Method::HEAD {
        body
    } else {
        match check_form_post(&access, &viewer, &parts, body).await {
            Ok(body) => body,
            Err(err) => return super::respond_error(&parts.uri, &viewer, err),
        }
    };
    parts.extensions.insert(viewer);
    next.run(Request::from_parts(parts, body)).await
}

/// A request that changes something, sent with a session cookie, must come from verdict's own
/// pages: its `Origin` (when the browser sends one) is verdict's, and it carries the session's
/// CSRF token (form field `csrf`, or header `X-CSRF-Token`). Bearer-token requests carry no
/// cookie, so another site cannot forge them.
async fn check_form_post(
    access: &Access,
    viewer: &Viewer,
    parts: &Parts,
    body: Body,
) -> Result<Body, WebError> {
    let forbidden = |why: &str| {
        WebError::Forbidden(format!(
            "{why}; reload verdict's page and send the form again"
        ))
    };
    if let Some(origin) = parts.headers.get(ORIGIN).and_then(|o| o.to_str().ok()) {
        let host_origin = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"));
        let own = access.own_origin();
        if own.as_deref() != Some(origin) && host_origin.as_deref() != Some(origin) {
            return Err(forbidden("the form was sent from another site"));
        }
    }
    let Some(expected) = &viewer.csrf else {
        return Ok(body);
    };
    if let Some(sent) = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return if operator::constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            Ok(body)
        } else {
            Err(forbidden("the form's security token is not this session's"))
        };
    }
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(forbidden(
            "a request with a session cookie needs the session's X-CSRF-Token header",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| WebError::BadRequest("the form is larger than 64 KB".into()))?;
    let sent = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !operator::constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return Err(forbidden(
            "the form's security token is missing or not this session's",
        ));
    }
    Ok(Body::from(bytes))
}

/// Used by handlers that answer with a redirect and need a cookie set or cleared too.
pub fn with_cookies(response: impl IntoResponse, cookies: &[String]) -> Response {
    let mut response = response.into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, v);
        }
    }
    response
}
