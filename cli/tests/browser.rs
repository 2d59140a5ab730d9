//! The page in a real browser: headless Chromium, driven through chromedriver,
//! against `quartet serve all`. A browser user, a telnet user and a `quartet
//! chat` user share one room and see the same lines in the same order; the
//! weather view shows a station's four metrics and its chart grows. Saves a
//! screenshot of each view under `target/browser/`.
//!
//! Needs `chromedriver` (Debian: `chromium` and `chromium-driver`); without
//! it the test prints a SKIPPED line and passes, except under `CI=true`.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use quartet_e2e::{ServerProcess, Signal, external};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
    process::{Child, Command},
    time::{Instant, timeout},
};

use common::{DEADLINE, Process, every_listener_on_any_port, quartet};

/// `quartet serve all`, every listener on a free port of 127.0.0.1.
async fn serve_all(data: &std::path::Path) -> ServerProcess {
    let mut command = quartet();
    command
        .arg("serve")
        .arg("all")
        .env("RUST_LOG", "warn")
        .env_remove("QUARTET_DATABASE_URL")
        .env_remove("QUARTET_NATS_URL")
        .env_remove("QUARTET_OBSERVATIONS");
    command.args(every_listener_on_any_port(data));
    ServerProcess::start(command, &["chat", "gateway chat", "gateway web"])
        .await
        .unwrap()
}

/// chromedriver on a port of its choosing, and that port once it is ready.
async fn chromedriver(path: &PathBuf) -> (Child, u16) {
    let mut command = Command::new(path);
    command.arg("--port=0").kill_on_drop(true);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').parse().unwrap();
            }
        }
        panic!("chromedriver exited before it was ready");
    })
    .await
    .expect("chromedriver was not ready in time");
    (child, port)
}

/// A headless Chromium session with a fresh profile.
async fn browser(port: u16, profile: &std::path::Path) -> Client {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1024,900".into(),
    ];
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut options = json!({ "args": args });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// Polls `check` until it gives a value, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn find(client: &Client, css: &str) -> Element {
    client.wait().for_element(Locator::Css(css)).await.unwrap()
}

async fn text_of(client: &Client, css: &str) -> String {
    find(client, css).await.text().await.unwrap()
}

/// The chat lines the page shows, as `(nick, text)`.
async fn page_lines(client: &Client) -> Vec<(String, String)> {
    let script = "return [...document.querySelectorAll('#lines li.message')]\
                  .map(li => [li.children[0].textContent, li.children[1].textContent]);";
    let lines = client.execute(script, vec![]).await.unwrap();
    serde_json::from_value(lines).unwrap()
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// A telnet user of the gateway's chat port, numbered, in `room`.
struct Telnet {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Telnet {
    async fn join(addr: &str, nick: &str, room: &str) -> Self {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut telnet = Self {
            lines: BufReader::new(read).lines(),
            write,
        };
        telnet
            .send(&format!("NICK {nick}\r\nJOIN {room} SEQ"))
            .await;
        assert_eq!(telnet.line().await, format!("OK nick {nick}"));
        assert!(telnet.line().await.starts_with("OK joined "));
        telnet
    }

    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    async fn line(&mut self) -> String {
        let next = timeout(DEADLINE, self.lines.next_line()).await;
        let line = next.expect("no line in time").unwrap();
        line.expect("the gateway closed the connection")
    }
}

/// Where a user reads the room: one line at a time.
trait Transcript {
    async fn next(&mut self) -> String;
}

impl Transcript for Telnet {
    async fn next(&mut self) -> String {
        self.line().await
    }
}

impl Transcript for Process {
    async fn next(&mut self) -> String {
        self.next_line().await
    }
}

/// A numbered room line, `#<seq> <nick> text`, as `(nick, text)`.
fn numbered(line: &str) -> Option<(&str, &str)> {
    let (_, rest) = line.strip_prefix('#')?.split_once(' ')?;
    rest.split_once(' ')
}

/// A line `quartet chat` printed, `<nick> text`, as `(nick, text)`.
fn printed(line: &str) -> Option<(&str, &str)> {
    line.strip_prefix('<')?.split_once("> ")
}

/// The next `n` lines of `transcript` that `said` reads as `(nick, text)`,
/// skipping the others (joins, leaves, prompts).
async fn messages(
    transcript: &mut impl Transcript,
    n: usize,
    said: fn(&str) -> Option<(&str, &str)>,
) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    while messages.len() < n {
        let line = transcript.next().await;
        if let Some((nick, text)) = said(&line) {
            messages.push((nick.to_owned(), text.to_owned()));
        }
    }
    messages
}

/// A number the page's script computes.
async fn number(client: &Client, script: &str) -> u64 {
    let value = client.execute(script, vec![]).await.unwrap();
    value.as_u64().unwrap_or(0)
}

/// The browser user joins with the keyboard alone (type, then Enter submits),
/// then a telnet and a `quartet chat` user; each says a line at once, and all
/// three must see the three lines in one order.
async fn three_doors_share_a_room(client: &Client, server: &ServerProcess) {
    let page = format!("http://{}/", server.addr("gateway web").unwrap());
    client.goto(&page).await.unwrap();
    let nick = find(client, "#nick").await;
    nick.send_keys("browser").await.unwrap();
    let room = find(client, "#room").await;
    room.clear().await.unwrap();
    room.send_keys("trio\u{E007}").await.unwrap();
    eventually("the browser joined", || async {
        let status = text_of(client, "#chat-status").await;
        (status == "In trio as browser.").then_some(())
    })
    .await;

    let mut telnet = Telnet::join(server.addr("gateway chat").unwrap(), "telnet", "trio").await;
    let mut cli = Process::spawn(
        quartet()
            .args(["--chat-addr", &server.url("chat").unwrap()])
            .args("chat trio --nick cli".split_whitespace()),
    );
    while !cli.next_line().await.starts_with("* joined trio as cli") {}

    let say = find(client, "#say").await;
    say.send_keys("hello from the browser\u{E007}")
        .await
        .unwrap();
    telnet.send("hello from telnet").await;
    cli.write("hello from the cli\n").await;

    let heard_by_telnet = messages(&mut telnet, 3, numbered).await;
    let heard_by_cli = messages(&mut cli, 3, printed).await;
    let heard_by_browser = eventually("the browser shows three lines", || async {
        let lines = page_lines(client).await;
        (lines.len() == 3).then_some(lines)
    })
    .await;
    let mut nicks: Vec<&str> = heard_by_telnet
        .iter()
        .map(|(nick, _)| nick.as_str())
        .collect();
    nicks.sort_unstable();
    assert_eq!(nicks, ["browser", "cli", "telnet"], "{heard_by_telnet:?}");
    assert_eq!(
        heard_by_browser, heard_by_telnet,
        "browser and telnet orders"
    );
    assert_eq!(heard_by_cli, heard_by_telnet, "cli and telnet orders");
    screenshot(client, "chat.png").await;
    cli.write("bye\n").await;
    assert_eq!(cli.finish().await.code, Some(0));
}

/// The weather view: a station's four metrics with units, and a chart that
/// gains a point.
async fn the_weather_view_shows_a_station(client: &Client) {
    const STATIONS: &str = "return document.querySelectorAll('#station option').length;";
    const POINTS: &str = "return Number(document.getElementById('chart').dataset.points);";
    find(client, "#show-weather").await.click().await.unwrap();
    eventually("the stations are listed", || async {
        (number(client, STATIONS).await > 1).then_some(())
    })
    .await;
    let station = find(client, "#station").await;
    station.select_by_value("nairobi").await.unwrap();
    let every = find(client, "#every").await;
    every.select_by_value("1s").await.unwrap();
    find(client, "#watch").await.click().await.unwrap();
    let first = eventually("a reading is charted", || async {
        let points = number(client, POINTS).await;
        (points >= 1).then_some(points)
    })
    .await;
    for (id, unit) in [
        ("min", "°C"),
        ("max", "°C"),
        ("pressure", "hPa"),
        ("rainfall", "mm"),
    ] {
        let shown = text_of(client, &format!("#metric-{id}")).await;
        assert!(shown.ends_with(unit), "{id}: {shown:?}");
        let value = shown.trim_end_matches(unit).trim();
        assert!(value.parse::<f64>().is_ok(), "{id}: {shown:?}");
    }
    eventually("the chart gains a point", || async {
        (number(client, POINTS).await > first).then_some(())
    })
    .await;
    screenshot(client, "weather.png").await;
}

#[tokio::test]
async fn a_browser_a_telnet_user_and_a_cli_user_share_a_room_and_the_weather_view_works() {
    let test = "cli/tests/browser.rs";
    let Some(driver) = external::program("chromedriver", test) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut server = serve_all(&scratch.path().join("data")).await;
    let (_driver, port) = chromedriver(&driver).await;
    let client = browser(port, &scratch.path().join("profile")).await;

    three_doors_share_a_room(&client, &server).await;
    the_weather_view_shows_a_station(&client).await;

    // The chat view at phone width, for the record.
    find(&client, "#show-chat").await.click().await.unwrap();
    client.set_window_size(375, 800).await.unwrap();
    screenshot(&client, "chat-phone.png").await;

    client.close().await.unwrap();
    server.signal(Signal::SIGTERM).unwrap();
    assert_eq!(server.exit_code().await.unwrap(), Some(0));
}
