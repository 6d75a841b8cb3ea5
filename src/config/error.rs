//! Config errors: each names the dotted key it is about; [`ConfigErrors`] carries all of them.

use std::fmt;

/// One mistake in the config, tied to the key that holds it (`queues.sales.ring[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the offending key; queues, agents and routes are named by their name,
    /// id or position: `queues.sales.overflow`, `agents.1001.extension`, `routes[2].target`.
    pub key: String,
    /// What is wrong and, where useful, what would be right.
    pub problem: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self {
            key: key.into(),
            problem: problem.to_string(),
        }
    }
}

/// Every mistake found in one config source (a file path or `<string>`), in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// Where the config came from, for the headline.
    pub source_name: String,
    /// The individual mistakes; never empty.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Bundles `errors` (which must not be empty) found in `source_name`.
    pub fn new(source_name: impl Into<String>, errors: Vec<ConfigError>) -> Self {
        Self {
            source_name: source_name.into(),
            errors,
        }
    }

    /// Whether any error is about exactly `key`.
    pub fn has_key(&self, key: &str) -> bool {
        self.errors.iter().any(|e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let noun = if n == 1 { "error" } else { "errors" };
        write!(f, "{}: {n} config {noun}", self.source_name)?;
        for error in &self.errors {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

/// Collects errors while a section is validated, so one pass reports every mistake.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<ConfigError>);

impl Problems {
    /// Records a mistake at `key`.
    pub(crate) fn push(&mut self, key: impl Into<String>, problem: impl fmt::Display) {
        self.0.push(ConfigError::new(key, problem));
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded mistakes.
    pub(crate) fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}
