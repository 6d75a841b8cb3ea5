//! The status page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! .ci/run) loads it from fsb24's admin listener while two calls ring, and the test reads the
//! DOM Chromium built. Set `FSB24_STATUS_SCREENSHOT=<file.png>` to keep a screenshot
//! (docs/status-page.png was made so).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::{AGENTS, SALES, call_of, spec};
use crate::support::app::World;
use crate::support::esl_peer::caller::CallSpec;

const SUPPORT: &str = r#"
[[agents]]
extension = "1003"
bitrix_user = 13
name = "Agent 1003"

[[queues]]
name = "support"
agents = ["1003"]
ring = ["30s"]

[[routes]]
destination = "9200"
target = { queue = "support" }
"#;

/// The browser, or `None` outside CI when it is not installed (CI installs it: there a missing
/// browser fails the test).
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed; .ci/run installs Debian's chromium package"
        );
        eprintln!("SKIPPED: chromium not installed (apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `args` (a fresh profile each time); returns stdout.
async fn browse(browser: &Path, url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("chromium finished within 90 s")
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the first `<td class="{class}">` after `from` in `dom`.
fn cell<'a>(dom: &'a str, from: usize, class: &str) -> &'a str {
    let open = format!("<td class=\"{class}\">");
    let start = dom[from..]
        .find(&open)
        .map(|i| from + i + open.len())
        .unwrap();
    let end = dom[start..].find("</td>").unwrap();
    &dom[start..start + end]
}

#[tokio::test]
async fn the_status_page_shows_two_ringing_calls_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let w = World::start(AGENTS, &format!("{SALES}{SUPPORT}")).await;
    w.bx.add_user(crate::support::bitrix_peer::SeedUser::new(
        13,
        "Agent 1003",
        Some("1003"),
    ));
    for ext in ["1001", "1002", "1003"] {
        w.fs.phone(ext).register(3600).rings_forever();
    }
    let a =
        w.fs.offer_call(w.app.esl_addr, spec("+79991234567"))
            .await
            .unwrap();
    let b_spec = CallSpec {
        destination: "9200".into(),
        ..spec("+74957654321")
    };
    let b = w.fs.offer_call(w.app.esl_addr, b_spec).await.unwrap();
    let (ext_a, ext_b) = (format!("fs-{}", a.uuid), format!("fs-{}", b.uuid));
    w.bx.wait_for("both calls ring with their cards open", |s| {
        let shown = |ext: &str| call_of(s, ext).map_or(0, |c| s.timeline.shown(&c.call_id).len());
        shown(&ext_a) == 2 && shown(&ext_b) == 1
    })
    .await;

    let url = format!("http://{}/", w.app.admin_addr);
    let dom = browse(&browser, &url, &["--dump-dom".to_owned()]).await;
    assert!(dom.contains("<title>fsb24 status</title>"), "{dom}");
    assert_eq!(dom.matches("<tr class=\"call\"").count(), 2, "{dom}");
    let row_a = dom
        .find(&format!("data-channel=\"{}\"", a.uuid))
        .expect("call A row");
    assert_eq!(cell(&dom, row_a, "caller"), "+79991234567");
    assert_eq!(cell(&dom, row_a, "route"), "9100");
    assert_eq!(cell(&dom, row_a, "queue"), "sales");
    assert!(cell(&dom, row_a, "phase phase-ringing").starts_with("ringing for "));
    assert_eq!(cell(&dom, row_a, "ringing"), "1001, 1002");
    let cards = cell(&dom, row_a, "cards");
    assert!(
        cards.contains("user 11") && cards.contains("user 12"),
        "{cards}"
    );
    let row_b = dom
        .find(&format!("data-channel=\"{}\"", b.uuid))
        .expect("call B row");
    assert_eq!(cell(&dom, row_b, "caller"), "+74957654321");
    assert_eq!(cell(&dom, row_b, "ringing"), "1003");
    assert!(dom.contains("data-agent=\"1001\""), "agents listed: {dom}");
    assert!(dom.contains("id=\"backlog\""), "outbox shown: {dom}");

    let dir = tempfile::tempdir().unwrap();
    let shot = std::env::var_os("FSB24_STATUS_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("status.png"));
    let args = [
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,760".to_owned(),
    ];
    browse(&browser, &url, &args).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );
    a.hang_up();
    b.hang_up();
    w.app.shutdown().await;
}
