//! Serving HTTP connections with bounds on what any one client may hold: verdict's webhook
//! endpoint faces the internet, so a client that connects and sends nothing, sends slowly, or
//! never reads must cost a bounded amount and for a bounded time.
//!
//! - **Header read timeout**: a connection must deliver a request's headers within
//!   [`Limits::header_timeout`], both after connecting and between keep-alive requests (hyper
//!   starts the timer whenever the connection is idle), or it is closed.
//! - **Connection cap**: at most [`Limits::max_connections`] open at once; past it a new
//!   connection is closed at once, so the kernel's accept queue never fills with them. The
//!   process's open-file limit is raised to what the system allows, as servers do.
//! - **Request buffers** of at most [`MAX_BUF`] per connection.
//! - **Graceful shutdown**: stop accepting, let requests in flight finish (a webhook body is
//!   read within its own timeout, so a delivery finishes its commit), close idle and stalled
//!   connections at once, and give up on anything left after [`Limits::shutdown_grace`].
//!
//! The webhook's body limits (bytes in flight, read timeout) are in
//! [`crate::intake::webhook`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Largest buffer hyper keeps per connection (request line, headers, body chunks). GitHub's
/// headers are under 2 KB and a browser's under 8 KB.
pub const MAX_BUF: usize = 64 * 1024;

/// What one client may hold, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's headers, from connecting or from the end of the last answer.
    pub header_timeout: Duration,
    /// Time to send a webhook's whole body once its headers arrived (GitHub itself gives up
    /// on a delivery after 10 seconds).
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// How long background work (signing, projecting) may leave an entry waiting before
    /// `/readyz` calls it stuck.
    pub stuck_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 8192,
            shutdown_grace: Duration::from_secs(10),
            stuck_after: Duration::from_secs(120),
        }
    }
}

/// Serves `app` on `listener` until `stop` resolves, then shuts down gracefully (see the
/// module's documentation).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    raise_open_file_limit();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        // Finished connections leave the set as they go.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or the like: let connections close, then go on.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each request learns the address it came from (the operator-token throttle is per
        // address).
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(
        open = connections.len(),
        "no longer accepting; finishing requests in flight"
    );
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            "requests still in flight after the shutdown grace period; closing them"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Raises this process's soft limit on open files to the hard limit, so the connection cap,
/// not the file limit, bounds connections (a server at the soft limit, often 1,024, stops
/// accepting anyone, health checks included).
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    tracing::debug!("could not raise the open-file limit");
                }
            }
        }
    }
}
