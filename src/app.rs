//! Wiring: builds the components from a [`Config`], runs them under one shutdown token and one
//! task tracker, and reloads the config file on SIGHUP. Signals for shutdown arrive as a future
//! from `main` (tests pass a oneshot), so nothing here waits on SIGTERM/SIGINT itself.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError, ConfigErrors};

/// Runs fsb24 until `shutdown` completes, then stops every task within `config.shutdown_grace`.
///
/// Shutdown order: the token is cancelled (listeners stop accepting, calls get their shutdown
/// input, the outbox worker finishes its current request), then tracked tasks are awaited up to
/// the grace period; whatever is still running then is logged and abandoned.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let grace = config.shutdown_grace;
    let source = config.source.clone();
    // Components that can follow config changes subscribe to this (`config_updates.clone()`).
    let (config_tx, config_updates) = watch::channel(Arc::new(config));

    // === Extension points (wired by the lead) ===
    // Each component gets `token.child_token()`, spawns only through `tracker`, and reads its
    // section from `config_updates.borrow()`:
    //   - outbox store + worker (`config.outbox`, `config.bitrix`)
    //   - esl inbound connection and presence (`config.esl.inbound`)
    //   - esl outbound listener (`config.esl.listen`) handing calls to per-call tasks and queues
    //   - http event endpoint (`config.http`) for click-to-call
    let _ = &config_updates;

    if let Some(path) = source {
        tracker.spawn(reload_on_sighup(path, config_tx, token.child_token()));
    }
    info!("fsb24 running");
    shutdown.await;
    info!("shutting down");
    token.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!(
            tasks = tracker.len(),
            "shutdown grace period elapsed; abandoning tasks"
        );
    }
    info!("stopped");
    Ok(())
}

/// Reads and validates the config file at `path` without blocking the runtime.
pub async fn read_config(path: &Path) -> Result<Config, ConfigErrors> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Config::from_toml_str_at(&text, path),
        Err(e) => {
            let error = ConfigError::new("(file)", format!("cannot read the config file: {e}"));
            Err(ConfigErrors::new(path.display().to_string(), vec![error]))
        }
    }
}

/// On every SIGHUP re-reads `path`; a valid config is published to `updates`, an invalid one is
/// logged key by key and the running config stays.
async fn reload_on_sighup(
    path: PathBuf,
    updates: watch::Sender<Arc<Config>>,
    token: CancellationToken,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(stream) => stream,
        Err(e) => {
            warn!(
                error = &e as &dyn std::error::Error,
                "cannot watch SIGHUP; config reload disabled"
            );
            return;
        }
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        let path_text = path.display().to_string();
        info!(signal = "SIGHUP", path = %path_text, "reloading config");
        match read_config(&path).await {
            Ok(config) => {
                updates.send_replace(Arc::new(config));
                info!(path = %path_text, "config reloaded");
            }
            Err(errors) => {
                for e in &errors.errors {
                    error!(key = %e.key, problem = %e.problem, "config error");
                }
                error!(path = %path_text, errors = errors.errors.len(), "config reload refused; keeping the running config");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        shutdown_grace = "1s"
        [esl.inbound]
        password = "pw"
        [esl.dial]
        template = "user/{extension}"
        [bitrix.auth.webhook]
        url = "https://example.bitrix24.de/rest/1/abc/"
    "#;

    #[tokio::test]
    async fn run_returns_once_the_shutdown_future_completes() {
        let config = Config::from_toml_str(MINIMAL).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = tokio::spawn(run(config, async move {
            let _ = rx.await;
        }));
        tx.send(()).unwrap();
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), app).await;
        done.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn run_with_a_config_file_stops_its_reload_watcher_on_shutdown() {
        // The SIGHUP watcher is a tracked task; run() only returns early if it saw the token.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fsb24.toml");
        tokio::fs::write(&path, MINIMAL.replace("\"1s\"", "\"30s\""))
            .await
            .unwrap();
        let config = read_config(&path).await.unwrap();
        let app = tokio::spawn(run(config, async {}));
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), app).await;
        done.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn read_config_reports_a_missing_file_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let errors = read_config(&path).await.unwrap_err();
        assert!(errors.has_key("(file)"));
        assert!(errors.to_string().contains("absent.toml"));
    }

    #[tokio::test]
    async fn read_config_remembers_where_the_config_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fsb24.toml");
        tokio::fs::write(&path, MINIMAL).await.unwrap();
        let config = read_config(&path).await.unwrap();
        assert_eq!(config.source.as_deref(), Some(path.as_path()));
    }
}
