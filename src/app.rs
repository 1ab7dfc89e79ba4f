//! Wiring of the serve job: spawn the child, start the router, initialize the child, accept
//! connections, dispatch by path, and shut down in order (DESIGN.md sections 1 and 4).

use crate::child::{self, ChildControl};
use crate::cli::Isolation;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::router::{self, InitCache, RouteError, RouterHandle, RouterOptions};
use crate::session::{Session, Sessions};
use crate::supervisor::Supervisor;
use crate::transport::{sse_legacy, streamable_http, websocket, Body};
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

/// The child's state as the HTTP side sees it.
#[derive(Debug, Clone)]
pub enum UpstreamState {
    /// Spawned, `initialize` not answered yet.
    Starting,
    /// Initialized; sessions are answered from this cache.
    Ready(Arc<InitCache>),
    /// The child answered `initialize` with an error or garbage (the text says which).
    Failed(String),
    /// The child exited (the text says how) and will not be restarted.
    Exited(String),
    /// The child exited and is being restarted (the text says how it ended).
    Restarting(String),
    /// Per-session mode: children start on demand, so the bridge is ready while it serves.
    PerSession,
}

impl UpstreamState {
    /// One line saying what the state is, for `/readyz` and error messages.
    pub fn describe(&self) -> String {
        match self {
            UpstreamState::Starting => "child starting (initialize not answered yet)".into(),
            UpstreamState::Ready(_) | UpstreamState::PerSession => "ready".into(),
            UpstreamState::Failed(why) => format!("child failed to initialize: {why}"),
            UpstreamState::Exited(how) => format!("child process {how}"),
            UpstreamState::Restarting(how) => format!("child restarting: {how}"),
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
    /// The shared child's router (`None` in per-session mode).
    pub router: Option<RouterHandle>,
    /// The shared child currently running (`None` in per-session mode); replaced on restart.
    pub shared_child: Arc<std::sync::Mutex<Option<ChildControl>>>,
    /// Router settings; per-session routers get their own `scope`.
    pub router_options: RouterOptions,
    /// The child's state.
    pub upstream: watch::Receiver<UpstreamState>,
    /// Owner of every task the bridge starts.
    pub tracker: TaskTracker,
    /// Children running in per-session mode.
    pub children: Arc<std::sync::atomic::AtomicUsize>,
    /// Fired when shutdown begins: `/readyz` goes red, new sessions are refused.
    pub shutdown: CancellationToken,
    /// Fired once in-flight requests have drained (or the grace period ran out): streams and
    /// connections close.
    pub closing: CancellationToken,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// When the bridge started.
    pub started: Instant,
    /// Host and Origin checks of the MCP endpoint.
    pub guard: crate::guard::Guard,
    /// TLS (`--tls-cert`, `--tls-key`), when serving HTTPS.
    pub tls: Option<crate::tls::Tls>,
    /// CORS policy (`--cors-origin`).
    pub cors: crate::cors::Cors,
    /// Bearer tokens (`--auth-token-file`, `MCP_BRIDGE_AUTH_TOKEN`).
    pub auth: crate::auth::Auth,
}

/// Runs the serve job until SIGTERM or SIGINT: binds `config.listen`, then [`serve`].
/// Errors: the address cannot be bound, or the child cannot be spawned.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    serve(config, listener, shutdown::signal()).await
}

/// Serves on `listener` until `stop` completes (or the child supervisor gives up), then shuts
/// down in order: stop accepting, close streams, let in-flight requests finish (up to
/// `shutdown_grace`), stop the child. Errors: the child cannot be spawned, or supervision gave
/// up (the error says why; `main` exits 1).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let (metrics, registry) = Metrics::new();
    let mut sessions = Sessions::new(
        config.max_sessions,
        config.session_outbox,
        config.replay_buffer,
    )
    .with_metrics(metrics.sessions.clone());
    if let Some(secret) = &config.session_secret {
        sessions = sessions.with_sealer(crate::session::seal::Sealer::new(secret.0.as_bytes()));
    }
    let sessions = Arc::new(sessions);
    // Cancelled once the drain is over: the reaper, the admin listener and the routers end.
    let exiting = CancellationToken::new();
    let router_options = RouterOptions {
        scope: None,
        roots: config.roots.clone(),
        forward_sampling: config.forward_sampling,
        forward_elicitation: config.forward_elicitation,
        client_request_timeout: config.client_request_timeout,
        stop: exiting.clone(),
    };
    let (state_tx, upstream) = watch::channel(UpstreamState::Starting);
    let shutdown_token = CancellationToken::new();
    let fatal = CancellationToken::new();
    let fatal_reason = Arc::new(std::sync::Mutex::new(None));
    let shared_child = Arc::new(std::sync::Mutex::new(None));
    let router = if config.isolation == Isolation::Shared {
        let spawned = child::spawn(&config.child, &tracker, &metrics)
            .with_context(|| format!("cannot start the child {:?}", config.child.program))?;
        let control = spawned.control.clone();
        *shared_child.lock().expect("child lock") = Some(control.clone());
        let router = router::start(
            spawned,
            sessions.clone(),
            metrics.clone(),
            router_options.clone(),
            &tracker,
        );
        let supervisor = Supervisor {
            spec: config.child.clone(),
            settings: config.restart,
            router: router.clone(),
            current: shared_child.clone(),
            state: state_tx,
            capabilities: child_capabilities(&config),
            init_timeout: config.init_timeout,
            shutdown: shutdown_token.clone(),
            fatal: fatal.clone(),
            fatal_reason: fatal_reason.clone(),
            metrics: metrics.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(supervisor.run(control));
        Some(router)
    } else {
        state_tx.send_replace(UpstreamState::PerSession);
        metrics.child.up.set(1);
        None
    };
    let addr = listener.local_addr().context("reading the bound address")?;
    let admin = match config.admin_listen {
        Some(at) => {
            let admin = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on --admin-listen {at}"))?;
            let bound = admin.local_addr().context("reading the admin address")?;
            tracing::info!(listen = %bound, "admin listening (/metrics, /healthz, /readyz)");
            Some(admin)
        }
        None => None,
    };
    tracing::info!(listen = %addr, path = %config.mcp_path, isolation = ?config.isolation, stateless = config.stateless, "mcp-bridge listening");
    // Browser origins allowed by CORS also pass the Origin check.
    let origins: Vec<String> = config
        .allowed_origins
        .iter()
        .chain(&config.cors_origins)
        .cloned()
        .collect();
    let guard = crate::guard::Guard::with_allow_lists(addr, &config.allowed_hosts, &origins);
    let cors = crate::cors::Cors::new(&config.cors_origins);
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::Tls::load(cert, key).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let oauth = match &config.oauth {
        Some(settings) => Some(
            crate::oauth::OAuth::new(settings.clone(), &config.mcp_path)
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let auth = crate::auth::Auth::load(
        config.auth_token_file.clone(),
        config.auth_token.clone(),
        oauth,
        config.session_secret.as_ref(),
    )
    .map_err(anyhow::Error::msg)?;
    let state = Arc::new(AppState {
        config,
        sessions,
        router,
        shared_child,
        router_options,
        upstream,
        tracker: tracker.clone(),
        children: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        shutdown: shutdown_token,
        closing: CancellationToken::new(),
        metrics,
        registry,
        started: Instant::now(),
        guard,
        tls,
        cors,
        auth,
    });
    tracker.spawn(reap_idle_sessions(state.clone()));
    let fetched_keys = state
        .config
        .oauth
        .as_ref()
        .is_some_and(|o| !matches!(o.jwks, crate::oauth::JwksSource::File(_)));
    if fetched_keys {
        // Warm the key cache so the first client does not wait for the fetch.
        let warm = state.clone();
        tracker.spawn(async move {
            if let Some(oauth) = warm.auth.oauth() {
                oauth.refresh().await;
            }
        });
    }
    if state.config.auth_token_file.is_some() || state.tls.is_some() || state.config.oauth.is_some()
    {
        tracker.spawn(reload_on_sighup(state.clone()));
    }
    // PID 1 reaps orphans until the very end, through the shutdown sequence.
    tracker.spawn(child::reaper::run(exiting.clone()));
    let graceful = GracefulShutdown::new();
    let stop = async {
        tokio::select! {
            _ = stop => {}
            _ = fatal.cancelled() => {}
        }
    };
    if let Some(admin) = admin {
        tracker.spawn(admin_loop(admin, state.clone(), exiting.clone()));
    }
    accept_loop(&listener, &state, &graceful, &tracker, stop).await;
    drop(listener);
    shutdown::drain(&state, graceful).await;
    exiting.cancel();
    tracker.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tracker.wait()).await;
    let why = fatal_reason.lock().expect("fatal lock").take();
    match why {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// The HTTP/1.1 and HTTP/2 connection settings of both listeners: a client that never finishes
/// its request head must not hold a connection forever (`--header-read-timeout`), nor send an
/// endless one (`--max-header-bytes`).
fn connection_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes);
    builder
}

/// Serves `/metrics` (behind a bearer token with `--protect-metrics`), `/healthz` and `/readyz`
/// (else 404) on the `--admin-listen` listener, plain HTTP/1.1 and HTTP/2, until `stop` fires
/// (after the drain, so probes see it).
async fn admin_loop(listener: TcpListener, state: Arc<AppState>, stop: CancellationToken) {
    let builder = connection_builder(&state.config);
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            async move {
                let resp = match req.uri().path() {
                    "/metrics" if state.config.protect_metrics => {
                        match Box::pin(state.auth.check(req.headers())).await {
                            Ok(_) => health::metrics(&req, &state),
                            Err(e) => {
                                state.metrics.http.rejected("auth");
                                e.into_response()
                            }
                        }
                    }
                    "/metrics" => health::metrics(&req, &state),
                    "/healthz" => health::healthz(&req, &state),
                    "/readyz" => health::readyz(&req, &state),
                    path => health::not_found(path, "/metrics"),
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let (builder, stop) = (builder.clone(), stop.clone());
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// The client capabilities the bridge offers the shared child: only those it can honour
/// (DESIGN.md section 2).
fn child_capabilities(config: &Config) -> serde_json::Value {
    let mut caps = serde_json::Map::new();
    if !config.roots.is_empty() {
        caps.insert("roots".into(), serde_json::json!({ "listChanged": false }));
    }
    if config.forward_sampling {
        caps.insert("sampling".into(), serde_json::json!({}));
    }
    if config.forward_elicitation {
        caps.insert(
            "elicitation".into(),
            serde_json::json!({ "form": {}, "url": {} }),
        );
    }
    serde_json::Value::Object(caps)
}

impl AppState {
    /// Ends `session`: removes it (404 afterwards), cancels its work at the router and stops its
    /// own child in per-session mode. Does nothing for a session already ended.
    pub async fn end_session(&self, session: &Session, why: &'static str) {
        if self.sessions.remove(&session.id).is_none() {
            return;
        }
        session.router.session_closed(session.key).await;
        tracing::debug!(session.id = %session.id, reason = why, "session ended");
        if let Some(child) = session.child.as_ref().map(|c| c.current()) {
            self.tracker
                .spawn(async move { child.stop(shutdown::CHILD_STOP_STEP).await });
        }
    }
}

impl AppState {
    /// Shared mode: while the child is starting or restarting, waits up to `--queue-timeout` for
    /// it to be ready. Errors: [`RouteError::Unavailable`] naming the child's state.
    pub async fn upstream_ready(&self, own_child: bool) -> Result<(), RouteError> {
        if own_child || self.router.is_none() {
            return Ok(());
        }
        let is_ready = |s: &UpstreamState| matches!(s, UpstreamState::Ready(_));
        if is_ready(&self.upstream.borrow()) {
            return Ok(());
        }
        let mut rx = self.upstream.clone();
        let waiting = |s: &UpstreamState| {
            !matches!(s, UpstreamState::Starting | UpstreamState::Restarting(_))
        };
        let waited = tokio::time::timeout(self.config.queue_timeout, rx.wait_for(waiting)).await;
        let now = self.upstream.borrow().clone();
        if waited.is_err() && !matches!(now, UpstreamState::Ready(_)) {
            self.metrics.http.rejected("timeout");
        }
        match now {
            UpstreamState::Ready(_) => Ok(()),
            other => Err(RouteError::Unavailable(format!(
                "{} (waited {} ms)",
                other.describe(),
                self.config.queue_timeout.as_millis()
            ))),
        }
    }
}

/// Re-reads `--auth-token-file` and the TLS certificate and key on every SIGHUP until shutdown;
/// what cannot be read keeps what is in force. Logs how many tokens are accepted, never the
/// tokens.
async fn reload_on_sighup(state: Arc<AppState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!(
            "cannot install a SIGHUP handler; tokens and certificates are read only at start"
        );
        return;
    };
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = hangup.recv() => {}
        }
        if state.config.auth_token_file.is_some() {
            match state.auth.reload() {
                Ok(n) => tracing::info!(tokens = n, "SIGHUP: reloaded --auth-token-file"),
                Err(e) => tracing::warn!(error = %e, "SIGHUP: keeping the previous tokens"),
            }
        }
        if let Some(oauth) = state.auth.oauth() {
            match oauth.reload().await {
                Ok(n) => tracing::info!(keys = n, "SIGHUP: reloaded the OAuth JWK Set"),
                Err(e) => tracing::warn!(error = %e, "SIGHUP: keeping the previous OAuth keys"),
            }
        }
        if let Some(tls) = &state.tls {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate and key"),
                Err(e) => tracing::warn!(error = %e, "SIGHUP: keeping the previous certificate"),
            }
        }
    }
}

/// Ends sessions that had no request and no open stream for `--session-idle-timeout`.
async fn reap_idle_sessions(state: Arc<AppState>) {
    let idle = state.config.session_idle_timeout;
    let period = (idle / 4).clamp(
        std::time::Duration::from_millis(20),
        std::time::Duration::from_secs(30),
    );
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for session in state.sessions.idle(idle) {
            tracing::info!(session.id = %session.id, idle_ms = idle.as_millis() as u64, "idle session reaped");
            state.end_session(&session, "idle").await;
        }
        let window = std::time::Duration::from_secs(crate::session::seal::ADOPT_WINDOW_SECS);
        for session in state.sessions.unclaimed(window) {
            tracing::debug!(session.id = %session.id, "session ended: no follow-up here within the adoption window (adopted by another replica, or abandoned)");
            state.end_session(&session, "not claimed").await;
        }
    }
}

async fn accept_loop(
    listener: &TcpListener,
    state: &Arc<AppState>,
    graceful: &GracefulShutdown,
    tracker: &TaskTracker,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let builder = connection_builder(&state.config);
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
        let service = {
            let state = state.clone();
            hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, state).await) }
            })
        };
        if let Some(tls) = &state.tls {
            // The handshake runs in the connection's task, bounded like a request head.
            let (acceptor, builder, watcher) =
                (tls.acceptor(), builder.clone(), graceful.watcher());
            let limit = state.config.header_read_timeout;
            tracker.spawn(async move {
                let stream = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        return tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => return tracing::debug!(peer = %peer, "TLS handshake timed out"),
                };
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
            });
            continue;
        }
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

/// Serves a request on one of the enabled transports' endpoints.
async fn endpoint_response(req: Request<Incoming>, state: &Arc<AppState>) -> Response<Body> {
    let c = &state.config;
    let path = req.uri().path();
    // The handlers' futures are boxed: hyper keeps a slot the size of this future for the
    // connection's lifetime, so inlining them would cost every idle stream kilobytes.
    match path {
        p if p == c.mcp_path => Box::pin(streamable_http::handle(req, state.clone())).await,
        p if p == c.sse_path => sse_legacy::open_stream(&req, state),
        p if p == c.message_path => Box::pin(sse_legacy::post_message(req, state)).await,
        _ => websocket::upgrade(req, state),
    }
}

/// Dispatches by path: the enabled transports' endpoints (behind the Host/Origin guard),
/// `/healthz`, `/readyz`, `/metrics`, else 404. Refusals are counted by reason.
async fn route(req: Request<Incoming>, state: Arc<AppState>) -> Response<Body> {
    let resp = route_by_path(req, &state).await;
    if let Some(reason) = resp.extensions().get::<crate::error::RejectReason>() {
        state.metrics.http.rejected(reason.0);
    }
    resp
}

async fn route_by_path(mut req: Request<Incoming>, state: &Arc<AppState>) -> Response<Body> {
    let path = req.uri().path();
    let c = &state.config;
    let endpoint = (c.streamable_http && path == c.mcp_path)
        || (c.sse && (path == c.sse_path || path == c.message_path))
        || (c.ws && path == c.ws_path);
    if endpoint {
        let authority = req.uri().authority().map(|a| a.as_str());
        if let Err(e) = state.guard.check(req.headers(), authority) {
            return e.into_response();
        }
        if let Some(preflight) = state.cors.preflight(req.method(), req.headers()) {
            return preflight;
        }
        let cors_origin = state.cors.allowed_origin(req.headers());
        // Without authentication nothing is checked or tagged (`Principal::of` reads 0), so an
        // open bridge pays no allocation here. Boxed like the handlers: OAuth validation may
        // wait for a JWK Set fetch.
        let checked = match state.auth.enabled() {
            false => Ok(None),
            true => Box::pin(state.auth.check(req.headers())).await.map(Some),
        };
        let mut resp = match checked {
            Err(e) => e.into_response(),
            Ok(principal) => {
                if let Some(principal) = principal {
                    req.extensions_mut().insert(principal);
                }
                endpoint_response(req, state).await
            }
        };
        state.cors.decorate(cors_origin, &mut resp);
        return resp;
    }
    match path {
        "/healthz" => health::healthz(&req, state),
        "/readyz" => health::readyz(&req, state),
        "/metrics" if state.config.admin_listen.is_some() => health::not_found(path, &c.mcp_path),
        "/metrics" => match state.config.protect_metrics {
            true => match Box::pin(state.auth.check(req.headers())).await {
                Ok(_) => health::metrics(&req, state),
                Err(e) => e.into_response(),
            },
            false => health::metrics(&req, state),
        },
        p if state.auth.oauth().is_some_and(|o| o.serves_metadata(p)) => state
            .auth
            .oauth()
            .expect("checked")
            .metadata_response(req.method()),
        _ => health::not_found(path, &state.config.mcp_path),
    }
}
