//! Reading fsb24's admin listener as Prometheus and a load balancer do: HTTP GETs over a real
//! socket, and a strict parser of the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Failsafe of every wait on the admin listener.
pub const FAILSAFE: Duration = Duration::from_secs(5);

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_total`, `_bucket`, ... suffixes).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` per family.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of `name` with exactly these labels (others absent).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// The value of `name` with these labels, 0 when the series does not exist yet.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The sum over every series of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// Parses the text format; panics on any line it does not understand.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            scrape.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line: {line}");
        scrape.samples.push(sample(line));
    }
    scrape
}

fn sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("labels end with }");
            (name, labels_of(body, line))
        }
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line}"
    );
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn labels_of(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape in {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line}"),
            }
        };
        labels.insert(key.to_owned(), value);
        body = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

/// `GET http://addr/path`: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Scrapes `/metrics` once.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

/// Scrapes until `pred` holds (the endpoint is the only observable of fsb24's own state; it is
/// read every 20 ms), failing after [`FAILSAFE`] with the last scrape.
pub async fn scrape_until(addr: SocketAddr, what: &str, pred: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + FAILSAFE;
    loop {
        let s = scrape(addr).await;
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "metrics: {what}: not reached; last scrape: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `path` until its status is `status` (bounded like [`scrape_until`]); returns the body.
pub async fn status_until(addr: SocketAddr, path: &str, status: u16) -> String {
    let deadline = Instant::now() + FAILSAFE;
    loop {
        let (got, body) = get(addr, path).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: not {status} in time; last: {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
