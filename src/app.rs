//! Wiring of the serve job: spawn the child, start the router, initialize the child, accept
//! connections, dispatch by path, and shut down in order (DESIGN.md sections 1 and 4).

use crate::child::{self, ChildControl};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::router::{self, InitCache, RouterHandle};
use crate::session::Sessions;
use crate::transport::{streamable_http, Body};
use crate::{health, shutdown};
use anyhow::Context;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest time a client may take to send a request's head (HTTP/1) before the connection closes.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The child's state as the HTTP side sees it.
#[derive(Debug, Clone)]
pub enum UpstreamState {
    /// Spawned, `initialize` not answered yet.
    Starting,
    /// Initialized; sessions are answered from this cache.
    Ready(Arc<InitCache>),
    /// The child answered `initialize` with an error or garbage (the text says which).
    Failed(String),
    /// The child exited (the text says how).
    Exited(String),
}

impl UpstreamState {
    /// One line saying what the state is, for `/readyz` and error messages.
    pub fn describe(&self) -> String {
        match self {
            UpstreamState::Starting => "child starting (initialize not answered yet)".into(),
            UpstreamState::Ready(_) => "ready".into(),
            UpstreamState::Failed(why) => format!("child failed to initialize: {why}"),
            UpstreamState::Exited(how) => format!("child process {how}"),
        }
    }
}

/// Everything request handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Validated configuration.
    pub config: Config,
    /// Open sessions.
    pub sessions: Arc<Sessions>,
    /// Handle to the router task.
    pub router: RouterHandle,
    /// The child's state.
    pub upstream: watch::Receiver<UpstreamState>,
    /// Fired when shutdown begins: `/readyz` goes red, streams end, new sessions are refused.
    pub shutdown: CancellationToken,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// When the bridge started.
    pub started: Instant,
}

/// Runs the serve job until SIGTERM or SIGINT: binds `config.listen`, then [`serve`].
/// Errors: the address cannot be bound, or the child cannot be spawned.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    serve(config, listener, shutdown::signal()).await
}

/// Serves on `listener` until `stop` completes, then shuts down in order: stop accepting, close
/// streams, let in-flight requests finish (up to `shutdown_grace`), stop the child.
/// Errors: the child cannot be spawned.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let (metrics, registry) = Metrics::new();
    let sessions = Arc::new(Sessions::new(config.max_sessions, config.session_outbox));
    let spawned = child::spawn(&config.child, &tracker)
        .with_context(|| format!("cannot start the child {:?}", config.child.program))?;
    let control = spawned.control.clone();
    let router = router::start(spawned, sessions.clone(), metrics.clone(), &tracker);
    let (state_tx, upstream) = watch::channel(UpstreamState::Starting);
    tracker.spawn(supervise(
        router.clone(),
        control.clone(),
        state_tx,
        config.init_timeout,
        metrics.clone(),
    ));
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(listen = %addr, path = %config.mcp_path, "mcp-bridge listening");
    let state = Arc::new(AppState {
        config,
        sessions,
        router,
        upstream,
        shutdown: CancellationToken::new(),
        metrics,
        registry,
        started: Instant::now(),
    });
    let graceful = GracefulShutdown::new();
    accept_loop(&listener, &state, &graceful, &tracker, stop).await;
    drop(listener);
    shutdown::drain(&state, graceful, &control).await;
    tracker.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tracker.wait()).await;
    Ok(())
}

/// Publishes the child's state: initialize it, then watch for its exit.
async fn supervise(
    router: RouterHandle,
    control: ChildControl,
    state: watch::Sender<UpstreamState>,
    timeout: std::time::Duration,
    metrics: Arc<Metrics>,
) {
    tokio::select! {
        result = router::initialize_child(&router, timeout) => match result {
            Ok(cache) => {
                tracing::info!(child.pid = control.pid(), server = cache.server_name(), "child initialized, ready");
                metrics.child_up.set(1);
                state.send_replace(UpstreamState::Ready(Arc::new(cache)));
            }
            Err(e) => {
                tracing::error!(child.pid = control.pid(), error = %e, "child initialize failed");
                state.send_replace(UpstreamState::Failed(e.to_string()));
            }
        },
        info = control.exited() => {
            state.send_replace(UpstreamState::Exited(info.to_string()));
        }
    }
    let info = control.exited().await;
    metrics.child_up.set(0);
    state.send_replace(UpstreamState::Exited(info.to_string()));
}

async fn accept_loop(
    listener: &TcpListener,
    state: &Arc<AppState>,
    graceful: &GracefulShutdown,
    tracker: &TaskTracker,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request head must not hold a connection forever.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(req, state).await) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tracker.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Dispatches by path: the MCP endpoint, `/healthz`, `/readyz`, `/metrics`, else 404.
async fn route(req: Request<Incoming>, state: Arc<AppState>) -> Response<Body> {
    let path = req.uri().path();
    if path == state.config.mcp_path {
        return streamable_http::handle(req, state).await;
    }
    match path {
        "/healthz" => health::healthz(&req, &state),
        "/readyz" => health::readyz(&req, &state),
        "/metrics" => health::metrics(&req, &state),
        _ => health::not_found(path, &state.config.mcp_path),
    }
}
