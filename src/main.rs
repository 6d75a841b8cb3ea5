//! The `fsb24` binary: command line, config loading, telemetry, then [`fsb24::app::run`].

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use fsb24::config::Config;
use tokio::signal::unix::{SignalKind, signal};

/// jemalloc instead of the system allocator: parsing the switch's 5-17 KiB events allocates a
/// few hundred strings each, and glibc's malloc (with its fastbin consolidation on every larger
/// block) was about a third of fsb24's CPU under load (docs/scaling.md, "What a call costs").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    CheckConfig {
        /// Also ask the portal whether the credentials may register and finish calls.
        #[arg(long)]
        online: bool,
    },
    /// Bind the Bitrix24 events and register the external lines of the config (idempotent);
    /// print what was done.
    Setup,
    /// Inspect or re-drive the durable outbox (`[outbox] path` of the config).
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Look into calls through the outbox.
    #[command(subcommand)]
    Call(CallCommand),
}

#[derive(Subcommand, PartialEq, Eq)]
enum CallCommand {
    /// Print a call's audit trail: every Bitrix24 write with its time, request, answers and
    /// retries, and the event that caused it.
    Show {
        /// The call's key (fs-<uuid>), its channel uuid, its Bitrix24 CALL_ID, or the
        /// client's phone number (every call with it).
        query: String,
    },
}

#[derive(Subcommand, PartialEq, Eq)]
enum OutboxCommand {
    /// Print pending counts and every dead letter with its reason.
    Status,
    /// Move every dead letter back to pending (a running daemon picks them up).
    Retry,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let Ok(config) = Config::load(&cli.config).map_err(|errors| eprintln!("{errors}")) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(Command::CheckConfig { online }) = cli.command {
        let (path, summary) = (cli.config.display(), config.summary());
        write!(std::io::stdout().lock(), "{path}: config OK\n{summary}")?;
        return if online {
            online_check(&config)
        } else {
            Ok(ExitCode::SUCCESS)
        };
    }
    if cli.command == Some(Command::Setup) {
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let report = runtime.block_on(fsb24::setup::setup(&config))?;
        write!(std::io::stdout().lock(), "{report}")?;
        let code = if report.scope_missing() { 1 } else { 0 };
        return Ok(ExitCode::from(code));
    }
    if let Some(Command::Outbox(sub)) = &cli.command {
        return outbox_command(sub, &config.outbox.path);
    }
    if let Some(Command::Call(CallCommand::Show { query })) = &cli.command {
        return call_show(query, &config.outbox.path);
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

/// `check-config --online`: the portal's answer, and a failure exit when a setting must change.
fn online_check(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let report = runtime.block_on(fsb24::app::online::check(config))?;
    writeln!(std::io::stdout().lock(), "{}", report.lines.join("\n"))?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `fsb24 call show`: reads the outbox file directly (safe while the daemon runs). Exits 1 when
/// no call matches.
fn call_show(query: &str, path: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let trails = runtime
        .block_on(fsb24::outbox::call_trails(path, query))
        .with_context(|| format!("reading the outbox {}", path.display()))?;
    if trails.is_empty() {
        eprintln!("no call in the outbox {} matches {query:?}", path.display());
        return Ok(ExitCode::FAILURE);
    }
    let mut out = std::io::stdout().lock();
    for trail in trails {
        write!(out, "{trail}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `fsb24 outbox status|retry`: works on the outbox file directly (safe while the daemon runs).
fn outbox_command(sub: &OutboxCommand, path: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let shown = path.display();
    let mut out = std::io::stdout().lock();
    match sub {
        OutboxCommand::Status => {
            let report = runtime
                .block_on(fsb24::outbox::status_report(path))
                .with_context(|| format!("reading the outbox {shown}"))?;
            write!(out, "outbox {shown}\n{report}")?;
        }
        OutboxCommand::Retry => {
            let n = runtime
                .block_on(fsb24::outbox::retry_dead_letters(path))
                .with_context(|| format!("re-driving dead letters in {shown}"))?;
            writeln!(
                out,
                "outbox {shown}: {n} dead letters moved back to pending"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
