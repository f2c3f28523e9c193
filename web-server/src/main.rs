//! `moongate`: the web-server binary.
//!
//! `moongate [--config <file.toml>]`; every setting can also come from `MOONGATE_*` variables
//! (see `web-server/src/config.rs`). Stops gracefully on SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use web_server::admin::logs::CaptureLayer;
use web_server::auth::{CredentialSource, Credentials, ADMIN_CREDENTIALS_FILE};
use web_server::autopair::WolfApiPins;
use web_server::cluster::store::RedisStore;
use web_server::embedded::{self, EmbeddedDemoHost};
use web_server::server::{preload_hosts, serve, HostProvider};
use web_server::store::{HostStore, SqliteStore};
use web_server::{AppState, Config};

fn config_path() -> anyhow::Result<Option<PathBuf>> {
    let mut args = std::env::args_os().skip(1);
    let mut path = std::env::var_os("MOONGATE_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config") | Some("-c") => {
                path = Some(PathBuf::from(args.next().context("--config needs a path")?));
            }
            Some("--help") | Some("-h") => {
                println!("usage: moongate [--config <file.toml>]  (settings: MOONGATE_* env vars)");
                std::process::exit(0);
            }
            _ => anyhow::bail!("unknown argument {arg:?} (try --help)"),
        }
    }
    Ok(path)
}

/// Registers SIGINT and SIGTERM at once and returns the future that waits for either.
///
/// Why eagerly: a supervisor may send SIGTERM as soon as it has read the startup lines;
/// a handler registered only when `serve` first polls it would let that signal kill the
/// process without the orderly shutdown (streams stopped, hosts' sessions cancelled).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match streams {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // stderr as filtered by RUST_LOG; the admin log view (`/api/admin/logs`) gets info and up.
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(env_filter),
        )
        .with(CaptureLayer::default().with_filter(tracing::level_filters::LevelFilter::INFO))
        .init();
    let shutdown = shutdown_signal();
    let config = Config::load(config_path()?.as_deref())?;
    // Owner-only from here on, whatever umask we were started with: the data dir holds keys.
    web_server::datadir::restrict_umask();
    web_server::datadir::secure_tree(&config.data_dir)
        .with_context(|| format!("securing data dir {}", config.data_dir.display()))?;
    let (credentials, source) =
        Credentials::load_or_generate(config.credentials.as_deref(), &config.data_dir)?;
    let (admin_credentials, admin_source) = Credentials::load_or_generate_file(
        config.admin_credentials.as_deref(),
        &config.data_dir,
        ADMIN_CREDENTIALS_FILE,
    )?;
    if admin_credentials == credentials {
        tracing::warn!("the admin credential equals the user credential: every user is an administrator (set MOONGATE_ADMIN_CREDENTIALS to another secret)");
    }
    // One node on SQLite, or one of several sharing Redis.
    let (store, redis): (Arc<dyn HostStore>, _) = match &config.redis {
        None => {
            let (store_key, _) = web_server::store_key::StoreKey::load_or_generate(
                config.store_key.as_deref(),
                &config.data_dir,
            )?;
            let store =
                SqliteStore::open_with_key(&config.data_dir.join("moongate.db"), store_key)?;
            (Arc::new(store), None)
        }
        Some(redis) => {
            // Every node must open the keys the others sealed: one key file, given explicitly.
            let path = config.store_key.as_deref().context(
                "with MOONGATE_REDIS_URL every node needs the same store key: set MOONGATE_STORE_KEY to a shared key file (64 hex digits, e.g. `openssl rand -hex 32`)",
            )?;
            let store_key = web_server::store_key::StoreKey::load(path)?;
            let (client, conn) = web_server::cluster::connect(redis).await.with_context(|| {
                format!(
                    "connecting to Redis at {}",
                    web_server::config::redact_url(&redis.url)
                )
            })?;
            let store = RedisStore::new(conn.clone(), &redis.prefix, store_key);
            (Arc::new(store), Some((redis.clone(), client, conn)))
        }
    };

    // The seam for an embedded host: demo-host in-process when no host is configured.
    let provider: Box<dyn HostProvider> = Box::new(EmbeddedDemoHost);
    let provided = provider
        .provide(&config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the embedded host: {e}"))?;
    let added = preload_hosts(store.as_ref(), &config.hosts).await?;
    if added > 0 {
        tracing::info!(added, "hosts preloaded");
    }

    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let mut state = AppState::new(config, credentials.clone(), store)
        .with_admin_credentials(admin_credentials.clone());
    if state.config.users.oidc.is_some() && state.oidc.is_none() {
        anyhow::bail!("[users.oidc] is configured but cannot be used (see the error above)");
    }
    if let Some((redis, client, conn)) = redis {
        state = state
            .with_cluster(&redis, client, conn)
            .await
            .context("joining the cluster")?;
    }
    for seed in &state.config.hosts {
        if let Some(location) = &seed.wolf_api {
            let port = seed
                .http_port
                .unwrap_or(gamestream::nvhttp::DEFAULT_HTTP_PORT);
            let pins = WolfApiPins::new(seed.address.clone(), port, location)
                .with_context(|| format!("wolf_api of host {}", seed.address))?;
            state.add_pin_submitter(Arc::new(pins));
        }
    }
    if let Some(p) = &provided {
        embedded::install(&state, p)
            .await
            .map_err(|e| anyhow::anyhow!("installing the embedded host: {e}"))?;
    }

    web_server::identities::spawn_sweeper(&state);

    println!("moongate is listening on http://{addr}/");
    match source {
        CredentialSource::Generated(path) => {
            // Printed once, to the terminal only (never to the log).
            println!(
                "Generated credential (stored in {}): {}",
                path.display(),
                credentials.expose()
            );
        }
        CredentialSource::Stored(path) => {
            println!("Using the credential stored in {}", path.display());
        }
        CredentialSource::Configured => println!("Using the credential from MOONGATE_CREDENTIALS"),
    }

    if let Some(p) = &provided {
        // Ignore a closed stdout (a supervisor that read only the first lines).
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout(),
            "embedded demo host on {}:{} (app 1: test pattern)",
            p.seed.address,
            p.seed.http_port.unwrap_or_default()
        );
    }

    // After the lines supervisors read first (URL, credential, embedded host); a closed stdout
    // is ignored. Printed once, to the terminal only (never to the log).
    let admin_line = match admin_source {
        CredentialSource::Generated(path) => format!(
            "Generated admin credential for /api/admin and the dashboard (stored in {}): {}",
            path.display(),
            admin_credentials.expose()
        ),
        CredentialSource::Stored(path) => {
            format!("Using the admin credential stored in {}", path.display())
        }
        CredentialSource::Configured => {
            "Using the admin credential from MOONGATE_ADMIN_CREDENTIALS".to_string()
        }
    };
    {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{admin_line}");
    }

    if !state.config.streamer_path.is_file() {
        tracing::warn!(
            path = %state.config.streamer_path.display(),
            "the streamer executable is missing: streams will fail (build it with `cargo build -p streamer`, same profile, or set MOONGATE_STREAMER)"
        );
    }
    let sessions = Arc::clone(&state.sessions);
    let cluster = state.cluster.clone();
    serve(listener, state, shutdown).await?;
    // Streams were asked to stop (1001); give their teardown (Stop, /cancel, reap) time to run
    // before the host goes away.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sessions.list().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if let Some(cluster) = cluster {
        // The lease goes now, not when it expires: this node's keys are free at once.
        cluster.leave().await;
    }
    drop(provided);
    Ok(())
}
