//! `scanbridge sandbox [--listen ADDR]`: the browser sandbox alone, with no store and no delivery, for
//! people who only test patterns. It loads the configuration and the rules as `route` does (the
//! configured rules directory, or the built-in examples), serves `/ui/sandbox` and the store-free part
//! of the admin API (`test-pattern`, `samples`, `route`, `rules`), and logs `listening on ADDR`. The
//! configured tokens apply as they do to the daemon; nothing is ever sent to a target.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use super::outcome::Outcome;
use crate::ingest::rate::RateLimiter;
use crate::shutdown::{CancellationToken, TaskTracker, spawn_signal_handler};
use crate::ui::Mode;
use crate::ui::access::Access;

/// The sandbox's default address: beside a daemon on the default 8080.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// Arguments of `scanbridge sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address; port 0 picks a free port.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Configuration file layered over the built-in defaults (targets, templates, tokens).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rules directory (overrides `rules.dir`; without one, the built-in example rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let offline = match super::route::Offline::load(args.config.as_deref(), args.rules, true) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scanbridge: error: {e:#}");
            return Ok(Outcome::Invalid);
        }
    };
    crate::logging::init(&offline.settings.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(offline, args.listen))?;
    Ok(Outcome::Success)
}

async fn serve(offline: super::route::Offline, listen: SocketAddr) -> anyhow::Result<()> {
    let settings = offline.settings.clone();
    let tokens = Arc::new(crate::ingest::auth::Tokens::from_config(&settings.server)?);
    let tls = super::serve::tls_acceptor(&settings.server)?;
    let access = Arc::new(Access::new(tokens.clone(), tls.is_some()));
    let limiter = Arc::new(RateLimiter::new(
        settings.server.rate_limit,
        settings.server.rate_burst,
        offline.clock.clone(),
    ));
    let rules = offline.router.len();
    let reload = Arc::new(crate::reload::Status::default());
    reload.loaded(offline.builtin, offline.clock.now_ms());
    let routing = Arc::new(crate::admin::routing::Routing::new(
        Arc::new(crate::router::RouterHandle::new(offline.router)),
        Arc::new(offline.targets),
        offline.topics,
        &settings,
    ));
    let admin = crate::admin::AdminState {
        access,
        limiter,
        body_timeout: settings.server.body_timeout,
        limits: crate::rules::Known::from_settings(&settings).limits,
        routing,
        reload,
        rules_dir: settings.rules.dir.display().to_string(),
        store: None,
        wake: Arc::new(tokio::sync::Notify::new()),
        clock: offline.clock.clone(),
    };
    let app = crate::admin::browser_app(admin, Mode::Sandbox)
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ui/sandbox") }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (hup, _) = tokio::sync::mpsc::channel(1);
    spawn_signal_handler(&tracker, shutdown.clone(), hup)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        rules,
        auth = tokens.required(),
        "sandbox: open {scheme}://{addr}/ui/sandbox"
    );
    tracing::info!("listening on {addr}");
    let limits = crate::ingest::server::ConnLimits {
        max_connections: settings.server.max_connections,
        max_per_client: settings.server.max_connections_per_client,
        header_timeout: settings.server.header_timeout,
        on_refused: None,
    };
    crate::ingest::server::serve(listener, app, limits, tls, shutdown.clone()).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}
