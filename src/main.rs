//! The `fsb24` binary: command line, config loading, telemetry, then [`fsb24::app::run`].

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use fsb24::config::Config;
use tokio::signal::unix::{SignalKind, signal};

/// FreeSWITCH <-> Bitrix24 telephony bridge.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        env = "FSB24_CONFIG",
        default_value = "conf/fsb24.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, PartialEq, Eq)]
enum Command {
    /// Run the bridge (the default without a subcommand).
    Run,
    /// Validate the config; print a summary, or every error with its key, then exit.
    CheckConfig,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let Ok(config) = Config::load(&cli.config).map_err(|errors| eprintln!("{errors}")) else {
        return Ok(ExitCode::FAILURE);
    };
    if cli.command == Some(Command::CheckConfig) {
        let (path, summary) = (cli.config.display(), config.summary());
        write!(std::io::stdout().lock(), "{path}: config OK\n{summary}")?;
        return Ok(ExitCode::SUCCESS);
    }
    fsb24::telemetry::init(config.log.format).context("setting up logging")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown signal received"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown signal received"),
            }
        };
        fsb24::app::run(config, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
