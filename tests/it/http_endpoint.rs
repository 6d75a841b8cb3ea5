//! The Bitrix24 event endpoint over real loopback sockets: `fsb24::http::serve` with its limits
//! (header-read and request timeouts, connection and per-connection request caps, body cap) and
//! the click hand-off. Timer tests run on tokio's paused clock: clients connect and write before
//! the server starts, so the server's timers all start at one virtual instant and nothing
//! depends on how fast this machine is.

use std::sync::Arc;
use std::time::Duration;

use fsb24::http::{ClickToCall, EventEndpoint, Limits, MAX_EVENT_BODY, serve};
use fsb24::ids::BitrixCallId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TOKEN: &str = "2c6e0b9f4d1a8e7c3b5f9a0d2e4c6b81";
const PATH: &str = "/bitrix24/event";
/// Virtual-time failsafe: without a server-side timeout the paused clock jumps here at once.
const FAILSAFE: Duration = Duration::from_secs(600);

/// The endpoint on a listener that is bound but not yet served.
struct Endpoint {
    listener: TcpListener,
    addr: std::net::SocketAddr,
    clicks: mpsc::Receiver<ClickToCall>,
    tx: mpsc::Sender<ClickToCall>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Endpoint {
    async fn bind(queue: usize) -> Self {
        // A backlog deep enough for the 300 clients that connect before the server accepts.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, clicks) = mpsc::channel(queue);
        Self {
            listener,
            addr,
            clicks,
            tx,
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Starts serving with `limits`; returns the virtual instant it started.
    fn serve(self, limits: Limits) -> (Instant, Served) {
        let router = EventEndpoint::new(Arc::from(TOKEN), self.tx).router(PATH);
        let tracker = self.tracker.clone();
        tracker.spawn(serve(
            self.listener,
            router,
            limits,
            self.stop.clone(),
            self.tracker.clone(),
        ));
        let served = Served {
            addr: self.addr,
            clicks: self.clicks,
            stop: self.stop,
            tracker: self.tracker,
        };
        (Instant::now(), served)
    }
}

struct Served {
    addr: std::net::SocketAddr,
    clicks: mpsc::Receiver<ClickToCall>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Served {
    async fn shutdown(self) {
        self.stop.cancel();
        self.tracker.close();
        timeout(FAILSAFE, self.tracker.wait())
            .await
            .expect("the server stopped");
    }
}

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        max_connections: 512,
        max_requests_per_connection: 100,
    }
}

fn click_body(call_id: &str) -> String {
    format!(
        "event=ONEXTERNALCALLSTART&data[PHONE_NUMBER_INTERNATIONAL]=%2B4930123456789\
         &data[USER_ID]=17&data[CALL_ID]={call_id}&auth[application_token]={TOKEN}"
    )
}

fn post(body: &str) -> String {
    format!(
        "POST {PATH} HTTP/1.1\r\nHost: fsb24\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One request on a fresh connection; the status code and body of the answer.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = timeout(FAILSAFE, stream.read(&mut answer))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut all = Vec::new();
    let read = timeout(FAILSAFE, stream.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    (String::from_utf8_lossy(&all).into_owned(), Instant::now())
}

#[tokio::test(start_paused = true)]
async fn half_open_connections_are_closed_at_the_header_read_timeout() {
    let endpoint = Endpoint::bind(8).await;
    let addr = endpoint.addr;
    // 300 clients that send half a request head, as in the audit; they wait in the backlog.
    let mut clients = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("POST {PATH} HTTP/1.1\r\nHost: fsb24\r\n").as_bytes())
            .await
            .unwrap();
        clients.push(stream);
    }
    let (started, served) = endpoint.serve(limits());
    for stream in &mut clients {
        let (sent, closed_at) = until_closed(stream).await;
        assert_eq!(closed_at - started, Duration::from_secs(10), "{sent:?}");
    }
    // The listener still serves after them.
    let (status, _) = exchange(addr, &post("event=X")).await;
    assert_eq!(status, 403);
    served.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_cap_wait_until_one_closes() {
    let endpoint = Endpoint::bind(8).await;
    let addr = endpoint.addr;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The fifth connection sends a whole request at once, but is over the cap of 4.
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    fifth.write_all(post("event=X").as_bytes()).await.unwrap();
    let (started, served) = endpoint.serve(Limits {
        max_connections: 4,
        ..limits()
    });
    let mut answer = vec![0; 1024];
    let n = timeout(FAILSAFE, fifth.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 403"));
    assert_eq!(
        Instant::now() - started,
        Duration::from_secs(10),
        "served once the idle ones timed out, not before"
    );
    for stream in &mut idle {
        let (_, closed_at) = until_closed(stream).await;
        assert_eq!(closed_at - started, Duration::from_secs(10));
    }
    served.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_body_never_completes_gets_408_at_the_request_timeout() {
    let endpoint = Endpoint::bind(8).await;
    let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
    let head = format!("POST {PATH} HTTP/1.1\r\nHost: fsb24\r\nContent-Length: 1000\r\n\r\nevent=");
    stream.write_all(head.as_bytes()).await.unwrap();
    let (started, served) = endpoint.serve(Limits {
        request_timeout: Duration::from_secs(3),
        ..limits()
    });
    let (sent, closed_at) = until_closed(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent:?}");
    assert_eq!(closed_at - started, Duration::from_secs(3));
    served.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_is_closed_after_its_request_limit() {
    let endpoint = Endpoint::bind(8).await;
    let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
    // Three pipelined requests on one keep-alive connection, its limit: the third answer closes
    // it (without a limit the connection would stay open for more).
    let three = post("event=X").repeat(3);
    stream.write_all(three.as_bytes()).await.unwrap();
    let (_, served) = endpoint.serve(Limits {
        max_requests_per_connection: 3,
        ..limits()
    });
    let (sent, _) = until_closed(&mut stream).await;
    assert_eq!(sent.matches("HTTP/1.1 403").count(), 3, "{sent:?}");
    assert!(sent.to_ascii_lowercase().contains("connection: close"));
    served.shutdown().await;
}

#[tokio::test]
async fn bodies_over_64_kib_get_413_and_oversized_fields_400() {
    let endpoint = Endpoint::bind(8).await;
    let (_, mut served) = endpoint.serve(limits());
    let addr = served.addr;
    let big = format!(
        "{}&pad={}",
        click_body("externalCall.ab.1"),
        "x".repeat(MAX_EVENT_BODY)
    );
    assert_eq!(exchange(addr, &post(&big)).await.0, 413);
    let long_id = format!("externalCall.{}.1", "a".repeat(200));
    assert_eq!(exchange(addr, &post(&click_body(&long_id))).await.0, 400);
    let forged = "externalCall.ab.1%0A2026-01-01T00:00:00Z%20INFO%20forged";
    assert_eq!(exchange(addr, &post(&click_body(forged))).await.0, 400);
    assert_eq!(
        exchange(addr, &post(&click_body("externalCall.ab.1")))
            .await
            .0,
        200
    );
    let accepted = served.clicks.recv().await.unwrap();
    assert_eq!(accepted.call_id, BitrixCallId::new("externalCall.ab.1"));
    assert!(
        served.clicks.try_recv().is_err(),
        "only the valid click got through"
    );
    served.shutdown().await;
}

#[tokio::test]
async fn a_click_refused_as_busy_is_taken_when_redelivered() {
    // A queue of one, already holding a click the app has not taken yet.
    let endpoint = Endpoint::bind(1).await;
    endpoint
        .tx
        .try_send(ClickToCall {
            call_id: BitrixCallId::new("externalCall.00.1"),
            user: fsb24::ids::BitrixUserId(17),
            phone: fsb24::ids::PhoneNumber::parse("5550100").unwrap(),
            line_number: None,
            call_list_id: None,
        })
        .unwrap();
    let (_, mut served) = endpoint.serve(limits());
    let addr = served.addr;
    let body = post(&click_body("externalCall.c1.2"));
    assert_eq!(exchange(addr, &body).await, (503, "busy".to_owned()));
    // The app catches up; Bitrix24 (or its operator) delivers the click again.
    served.clicks.recv().await.unwrap();
    assert_eq!(exchange(addr, &body).await, (200, "ok".to_owned()));
    let taken = served.clicks.recv().await.unwrap();
    assert_eq!(taken.call_id.as_str(), "externalCall.c1.2");
    // Once taken, a third delivery is the duplicate.
    assert_eq!(exchange(addr, &body).await, (200, "duplicate".to_owned()));
    served.shutdown().await;
}

#[tokio::test]
async fn a_clicked_number_without_country_is_dialled_in_e164_form() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut clicks) = mpsc::channel(4);
    let numbering = fsb24::phone::Numbering::for_country("DE").unwrap();
    let router = EventEndpoint::new(Arc::from(TOKEN), tx)
        .with_numbering(numbering)
        .router(PATH);
    let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(serve(
        listener,
        router,
        limits(),
        stop.clone(),
        tracker.clone(),
    ));
    // Only the clicked text, as a portal without a default country sends it.
    let body = format!(
        "event=ONEXTERNALCALLSTART&data[PHONE_NUMBER]=030%20123%2045%2067\
         &data[USER_ID]=17&data[CALL_ID]=externalCall.c3.3&auth[application_token]={TOKEN}"
    );
    assert_eq!(exchange(addr, &post(&body)).await, (200, "ok".to_owned()));
    let click = timeout(FAILSAFE, clicks.recv()).await.unwrap().unwrap();
    assert_eq!(click.phone.as_str(), "+49301234567");
    stop.cancel();
    tracker.close();
    timeout(FAILSAFE, tracker.wait()).await.unwrap();
}
