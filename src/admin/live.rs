//! Values read at scrape time (the outbox backlog from the store, agents from the queue actor,
//! the ESL connection, token refreshes): the `/metrics` handler gathers them, then the
//! registry encodes them through this collector with everything else.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Whether a value only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A level.
    Gauge,
    /// A total.
    Counter,
}

/// One metric family read at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveMetric {
    /// Name (a counter's `_total` suffix is added by the encoder).
    pub name: &'static str,
    /// `# HELP`.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: Kind,
    /// `(labels, value)`.
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl LiveMetric {
    /// A family with one unlabelled sample.
    pub(crate) fn single(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Self {
        Self {
            name,
            help,
            kind,
            samples: vec![(Vec::new(), value)],
        }
    }
}

/// The collector; the handler replaces its values before each encode.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    values: Arc<Mutex<Vec<LiveMetric>>>,
}

impl Live {
    /// Replaces every value.
    pub(crate) fn set(&self, metrics: Vec<LiveMetric>) {
        *self.values.lock().unwrap_or_else(|p| p.into_inner()) = metrics;
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for metric in values {
            let kind = match metric.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
            };
            let mut family = encoder.encode_descriptor(metric.name, metric.help, None, kind)?;
            for (labels, value) in &metric.samples {
                let sample = family.encode_family(labels)?;
                match metric.kind {
                    Kind::Gauge => ConstGauge::new(*value).encode(sample)?,
                    // Totals are whole counts.
                    Kind::Counter => ConstCounter::new(*value as u64).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}
