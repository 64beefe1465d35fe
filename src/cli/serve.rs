//! `scanbridge serve`: the daemon. Loads settings and rules (refusing to start on any error), opens the
//! store (recovering leases), starts the worker, the retention task (pruning, room for new events),
//! the rules reloader, the signal handler and the HTTP server, and logs `listening on ADDR` once the
//! socket is bound. On SIGTERM/SIGINT it stops accepting,
//! lets in-flight deliveries finish, and closes the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, mpsc};

use super::outcome::Outcome;
use crate::event::EnvelopeRules;
use crate::ingest::auth as http_auth;
use crate::ingest::rate::RateLimiter;
use crate::ingest::{Ingestor, http, server};
use crate::metrics::Metrics;
use crate::notify::Targets;
use crate::reload::Reloader;
use crate::router::{Router, RouterHandle};
use crate::settings::Settings;
use crate::shutdown::{CancellationToken, TaskTracker, spawn_signal_handler};
use crate::worker::Worker;

/// Arguments of `scanbridge serve`; flags override the configuration.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file layered over the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rules directory (overrides `rules.dir`).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Listen address (overrides `server.listen`); port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory of the store (overrides `store.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also ingest NDJSON events from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Do not log warnings about rule patterns (at start and on each reload).
    #[arg(long)]
    pub no_lint: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(r) = args.rules {
        settings.rules.dir = r;
    }
    if let Some(l) = args.listen {
        settings.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        settings.store.data_dir = d;
    }
    crate::logging::init(&settings.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(serve(settings, args.stdin, !args.no_lint));
    // A pending blocking read of stdin cannot be interrupted; do not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| Outcome::Success)
}

/// The TLS acceptor of `[server]`, when a certificate and key are configured.
pub(crate) fn tls_acceptor(
    server: &crate::config::ServerConfig,
) -> Result<Option<tokio_rustls::TlsAcceptor>, crate::config::ConfigError> {
    match (&server.tls_cert_file, &server.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(crate::ingest::tls::acceptor(cert, key)?)),
        _ => Ok(None),
    }
}

async fn serve(settings: Settings, stdin: bool, lint: bool) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let known = crate::rules::Known::from_settings(&settings);
    let (rules, builtin) =
        crate::rules::load_dir_or_builtin(&settings.rules.dir, &known).map_err(|e| {
            for err in &e.0 {
                tracing::error!(error = %err, "invalid rule");
            }
            anyhow::anyhow!("{} error(s) in the rules: {e}", e.0.len())
        })?;
    if builtin {
        tracing::warn!(
            dir = %settings.rules.dir.display(),
            "no rules directory here: using the built-in example rules (CRITICAL and prod/ HIGH scans from ECR and Inspector2, Inspector2 CRITICAL and fixable HIGH findings, failed scans, CRITICAL scanner reports); create the directory or pass --rules to use your own"
        );
    }
    if lint {
        crate::reload::log_lints(&rules);
    }
    let topics = Arc::new(crate::notify::compile_topics(&settings.targets)?);
    let router = Router::new(rules, topics.clone());
    metrics
        .rules_loaded
        .store(router.len() as u64, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(rules = router.len(), dir = %settings.rules.dir.display(), "rules loaded");
    let router = Arc::new(RouterHandle::new(router));

    // Everything that can refuse the configuration is checked before the store is opened.
    let tokens = Arc::new(http_auth::Tokens::from_config(&settings.server)?);
    let sns = Arc::new(crate::ingest::sns::door::Sns::new(&settings.sns)?);
    let tls = tls_acceptor(&settings.server)?;
    // Rung by ingest (and, with JetStream, by any daemon of the cluster) when deliveries are stored.
    let wake = Arc::new(Notify::new());
    let where_ = crate::store::open::describe(&settings.store);
    let store = crate::store::open::for_daemon(&settings.store, wake.clone())
        .await
        .with_context(|| format!("opening the store in {where_}"))?;
    let pending = store.depth().await?;
    tracing::info!(store = %where_, pending, "store open");
    let templates = Arc::new(settings.load_templates()?);
    let targets = Arc::new(Targets::build(
        &settings.targets,
        &settings.delivery,
        templates,
    )?);

    // The one clock every room reads "now" from.
    let clock = crate::alerting::system_clock();
    // Parsed events, from ingest (and digests) to the worker.
    let handoff = Arc::new(crate::event::Handoff::default());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Deliveries leased by the accepting commit, from ingest to the worker; its slots bound every
    // delivery the worker holds.
    let inbox = Arc::new(crate::inbox::Inbox::new(
        settings.delivery.workers,
        settings.delivery.lease,
    ));
    let (hup_tx, hup_rx) = mpsc::channel(1);
    spawn_signal_handler(&tracker, shutdown.clone(), hup_tx)?;

    // Whether there is room for new events: set by the retention task, read by ingest.
    let room = Arc::new(crate::room::Room::default());
    let ingestor = Ingestor {
        router: router.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        envelope: EnvelopeRules {
            max_event_bytes: settings.server.max_event_bytes,
            account: settings.aws.account.clone(),
            region: settings.aws.region.clone(),
        },
        wake: wake.clone(),
        clock: clock.clone(),
        handoff: handoff.clone(),
        inbox: inbox.clone(),
        room: room.clone(),
    };
    let limits = settings
        .targets
        .iter()
        .filter_map(|(name, t)| t.rate_limit().map(|r| (name.clone(), r)))
        .collect();
    let alerting = Arc::new(crate::alerting::Alerting::new(
        router.clone(),
        store.clone(),
        metrics.clone(),
        clock.clone(),
        crate::alerting::RateLimiter::new(limits, clock.clone()),
        handoff.clone(),
    ));
    let worker = Worker {
        store: store.clone(),
        targets: targets.clone(),
        metrics: metrics.clone(),
        wake: wake.clone(),
        config: settings.delivery.clone(),
        alerting,
        clock: clock.clone(),
        handoff,
        inbox,
    };
    tracker.spawn(worker.run(shutdown.clone()));
    let retainer = crate::retention::Retainer {
        store: store.clone(),
        config: settings.store.clone(),
        clock: clock.clone(),
        room,
        router: router.clone(),
        metrics: metrics.clone(),
    };
    tracker.spawn(retainer.run(shutdown.clone()));
    let reload_status = Arc::new(crate::reload::Status::default());
    reload_status.loaded(builtin, clock.now_ms());
    let routing = Arc::new(crate::admin::routing::Routing::new(
        router.clone(),
        targets,
        topics.clone(),
        &settings,
    ));
    let reloader = Reloader {
        dir: settings.rules.dir.clone(),
        known,
        router,
        metrics: metrics.clone(),
        topics,
        lint,
        status: reload_status.clone(),
        clock: clock.clone(),
    };
    tracker.spawn(reloader.run(settings.rules.watch, hup_rx, shutdown.clone()));
    if stdin {
        tokio::spawn(crate::ingest::stdin::run(
            ingestor.clone(),
            shutdown.clone(),
        ));
    }

    let aws_keys = Arc::new(crate::ingest::sigv4::Credentials::new(
        settings.aws_credentials()?,
    ));
    if aws_keys.is_empty() {
        tracing::warn!(
            "the AWS JSON door (POST /) does not verify SigV4 signatures: server.aws_credentials is empty, so the access key id alone authenticates (taken as an ingest token) and it travels in clear text; configure server.aws_credentials to verify signatures"
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("binding {}", settings.server.listen))?;
    let addr = listener.local_addr()?;
    let state = http::AppState {
        ingestor,
        tokens: tokens.clone(),
        limiter: Arc::new(RateLimiter::new(
            settings.server.rate_limit,
            settings.server.rate_burst,
            clock.clone(),
        )),
        max_body_bytes: settings.server.max_body_bytes,
        body_timeout: settings.server.body_timeout,
        max_batch_events: settings.server.max_batch_events,
        sns,
        aws_keys: aws_keys.clone(),
        api_key_header: settings
            .server
            .api_key_header
            .as_deref()
            .and_then(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).ok()),
    };
    let access = Arc::new(crate::ui::access::Access::new(
        tokens.clone(),
        tls.is_some(),
    ));
    let admin = crate::admin::AdminState {
        access,
        limiter: state.limiter.clone(),
        body_timeout: settings.server.body_timeout,
        limits: crate::rules::Known::from_settings(&settings).limits,
        routing,
        reload: reload_status,
        rules_dir: settings.rules.dir.display().to_string(),
        store: Some(store.clone()),
        wake,
        clock: clock.clone(),
    };
    let app =
        http::app(state.clone()).merge(crate::admin::browser_app(admin, crate::ui::Mode::Daemon));
    tracing::info!(
        auth = tokens.required(),
        tls = tls.is_some(),
        max_connections = settings.server.max_connections,
        max_connections_per_client = settings.server.max_connections_per_client,
        sigv4 = !aws_keys.is_empty(),
        "listening on {addr}"
    );
    let refused = metrics.clone();
    let limits = server::ConnLimits {
        max_connections: settings.server.max_connections,
        max_per_client: settings.server.max_connections_per_client,
        header_timeout: settings.server.header_timeout,
        on_refused: Some(server::OnRefused(Arc::new(move || {
            refused.limited("client_connections")
        }))),
    };
    server::serve(listener, app, limits, tls, shutdown.clone()).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    drop(store);
    tracing::info!("stopped");
    Ok(())
}
