//! Logging setup: tracing-subscriber with the level from `RUST_LOG` (default `info`) and text or
//! JSON lines (config `[log] format`, overridden by `FSB24_LOG_FORMAT`). Called once, by `main`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Environment variable that overrides `[log] format` (`text` or `json`).
pub const FORMAT_ENV: &str = "FSB24_LOG_FORMAT";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` is not a valid filter directive list.
    #[error("RUST_LOG is not a valid log filter")]
    Filter {
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// `FSB24_LOG_FORMAT` is neither `text` nor `json`.
    #[error("{FORMAT_ENV}={value:?} is not \"text\" or \"json\"")]
    Format {
        /// The value found.
        value: String,
    },
    /// A global subscriber was already installed (init called twice).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The format to use: `FSB24_LOG_FORMAT` if set, else the config's.
pub fn effective_format(
    configured: LogFormat,
    env: Option<&str>,
) -> Result<LogFormat, TelemetryError> {
    match env.map(str::trim) {
        None | Some("") => Ok(configured),
        Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(TelemetryError::Format {
            value: other.to_owned(),
        }),
    }
}

/// Installs the global subscriber, writing to stderr.
pub fn init(configured: LogFormat) -> Result<(), TelemetryError> {
    let env = std::env::var(FORMAT_ENV).ok();
    let format = effective_format(configured, env.as_deref())?;
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(directives).map_err(|source| TelemetryError::Filter { source })?
        }
        _ => EnvFilter::new("info"),
    };
    // Colours only for a person at a terminal: journald, files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_configured_format() {
        assert_eq!(
            effective_format(LogFormat::Text, Some("json")).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            effective_format(LogFormat::Json, None).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            effective_format(LogFormat::Json, Some("")).unwrap(),
            LogFormat::Json
        );
        assert!(effective_format(LogFormat::Text, Some("yaml")).is_err());
    }
}
