//! The real `fsb24` binary as a child process that tests start, stop (SIGTERM or SIGKILL) and
//! restart, and a free loopback port for its listener.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::timeout;

/// The fsb24 child process, restartable.
pub struct Daemon {
    /// The config file it runs with.
    pub config: PathBuf,
    /// Where its stderr (the log) is appended, with a `=== start N` line per start.
    pub log: PathBuf,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
    /// Counts the log lines written to `log` (all starts).
    written: watch::Sender<u64>,
}

impl Daemon {
    /// A daemon for `config` logging to `log`; not started yet.
    pub fn new(config: PathBuf, log: PathBuf) -> Self {
        Self {
            config,
            log,
            child: None,
            starts: 0,
            written: watch::channel(0).0,
        }
    }

    /// Waits (5 s failsafe) until the log holds a line containing `needle`; true if it does.
    pub async fn wait_log(&self, needle: &str) -> bool {
        let mut written = self.written.subscribe();
        let found =
            |_: &u64| std::fs::read_to_string(&self.log).is_ok_and(|text| text.contains(needle));
        matches!(
            timeout(Duration::from_secs(5), written.wait_for(found)).await,
            Ok(Ok(_))
        )
    }

    /// Waits (failsafe `within`) until the log holds at least `n` lines containing `needle`.
    pub async fn wait_log_count(&self, needle: &str, n: usize, within: Duration) -> bool {
        let mut written = self.written.subscribe();
        let found = |_: &u64| {
            std::fs::read_to_string(&self.log)
                .is_ok_and(|text| text.lines().filter(|l| l.contains(needle)).count() >= n)
        };
        matches!(timeout(within, written.wait_for(found)).await, Ok(Ok(_)))
    }

    /// The running child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts fsb24 and waits (bounded) until it logs "fsb24 running".
    pub async fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fsb24"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env_remove("FSB24_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, mut ready) = watch::channel(false);
        let log = self.log.clone();
        let start = self.starts;
        let written = self.written.clone();
        tokio::spawn(async move {
            let mut out = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .await
                .unwrap();
            let mut lines = BufReader::new(stderr).lines();
            let header = format!("=== start {start}\n");
            let _ = out.write_all(header.as_bytes()).await;
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("fsb24 running") {
                    ready_tx.send_replace(true);
                }
                let _ = out.write_all(line.as_bytes()).await;
                let _ = out.write_all(b"\n").await;
                let _ = out.flush().await;
                written.send_modify(|n| *n += 1);
            }
        });
        self.child = Some(child);
        self.starts += 1;
        let up = timeout(Duration::from_secs(20), ready.wait_for(|r| *r)).await;
        assert!(
            matches!(up, Ok(Ok(_))),
            "fsb24 start {start} did not log 'fsb24 running'; see {}",
            self.log.display()
        );
    }

    /// SIGTERM (a `systemctl stop` or restart), then waits (20 s failsafe) for fsb24 to stop
    /// by itself; returns its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("fsb24 is running");
        let pid = child.id().expect("fsb24 has a pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("fsb24 did not stop within 20 s of SIGTERM")
            .unwrap()
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// A free loopback port: bind, read, drop (SO_REUSEADDR lets fsb24 rebind it after each kill).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
