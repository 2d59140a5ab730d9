//! Fan-out benchmark: one room of many members, senders at a fixed rate.
//! Reports deliveries per second and delivery latency (say to receipt, p50 and
//! p99, hdrhistogram) for three setups measured in the same run:
//!
//! 1. `hub`: the raw in-process fan-out (RoomHub + its feed), no gRPC: the
//!    baseline.
//! 2. `grpc`: the chat server in-process with the local backplane; every
//!    member is a real gRPC stream over loopback.
//! 3. `nats`: two servers (replicas) on one NATS, half the members on each
//!    (only with `--nats-url` or QUARTET_TEST_NATS_URL).
//!
//! ```text
//! cargo bench -p quartet-chat --bench fanout -- [--members 200] [--rate 500]
//!     [--seconds 10] [--senders 10] [--nats-url nats://127.0.0.1:4222]
//!     [--connection-workers N]
//! ```
//!
//! Clients run in the same process as the servers, so the figures include the
//! cost of 200 gRPC clients decoding every line on the same cores.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

// The tests' harness: in-process servers on port 0, and NATS prefixes that
// clean up after themselves.
#[path = "../tests/member/mod.rs"]
mod member;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use quartet_chat::{ChatConfig, Nick, RoomEvent, RoomHub, RoomName};
use quartet_proto::chat::v1::{
    ClientEvent, Join, Say, chat_service_client::ChatServiceClient, client_event,
    server_event::Event,
};
use quartet_runtime::ServerOptions;
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    task::JoinSet,
    time::MissedTickBehavior,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// gRPC connections the members share (HTTP/2 multiplexes their streams).
const CONNECTIONS: usize = 8;
/// Time before measuring, so connections and buffers are warm.
const WARM_UP: Duration = Duration::from_secs(1);
/// Time after the last line for deliveries still in flight.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct Plan {
    members: usize,
    senders: usize,
    rate: u32,
    seconds: u64,
    nats_url: Option<String>,
    /// The servers' `--connection-workers` (default: one per CPU).
    connection_workers: Option<usize>,
}

impl Plan {
    fn from_args() -> Self {
        let mut plan = Plan {
            members: 200,
            senders: 10,
            rate: 500,
            seconds: 10,
            nats_url: std::env::var("QUARTET_TEST_NATS_URL").ok(),
            connection_workers: None,
        };
        let args: Vec<String> = std::env::args().collect();
        let mut i = 1;
        while i < args.len() {
            let value = args.get(i + 1).cloned().unwrap_or_default();
            match args[i].as_str() {
                "--members" => plan.members = value.parse().unwrap(),
                "--senders" => plan.senders = value.parse().unwrap(),
                "--rate" => plan.rate = value.parse().unwrap(),
                "--seconds" => plan.seconds = value.parse().unwrap(),
                "--nats-url" => plan.nats_url = Some(value),
                "--connection-workers" => plan.connection_workers = Some(value.parse().unwrap()),
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        plan
    }
}

/// Chat settings for the run: no rate limit (the senders set the pace), no
/// history on join.
fn bench_config() -> ChatConfig {
    ChatConfig {
        rate_per_second: 1e9,
        rate_burst: u32::MAX,
        history: 0,
        ..ChatConfig::default()
    }
}

/// What the receivers saw in the measured window.
struct Tally {
    latency_us: Histogram<u64>,
    deliveries: u64,
    skipped: u64,
    /// Lines said inside the window: every member should get each of them.
    said: u64,
    /// Member streams that ended before the run did (each a lost member).
    broken: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
            deliveries: 0,
            skipped: 0,
            said: 0,
            broken: 0,
        }
    }

    fn add(&mut self, other: &Tally) {
        self.latency_us.add(&other.latency_us).unwrap();
        self.deliveries += other.deliveries;
        self.skipped += other.skipped;
        self.broken += other.broken;
    }

    /// Records a line stamped `sent_ns` after `base`, if inside the window.
    fn record(&mut self, base: Instant, text: &str, window: (Duration, Duration)) {
        let Some(sent) = text.strip_prefix("t=").and_then(|n| n.parse::<u64>().ok()) else {
            return;
        };
        let sent = Duration::from_nanos(sent);
        if sent < window.0 || sent >= window.1 {
            return;
        }
        let latency = base.elapsed().saturating_sub(sent);
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(micros);
        self.deliveries += 1;
    }
}

fn report(name: &str, plan: &Plan, tally: &Tally) {
    let per_second = tally.deliveries as f64 / plan.seconds as f64;
    let expected = tally.said * plan.members as u64;
    println!(
        "{name:5} members={} rate={}/s deliveries/s={per_second:.0} delivered={}/{expected} p50={:.2}ms p99={:.2}ms max={:.2}ms skipped={} broken={}",
        plan.members,
        plan.rate,
        tally.deliveries,
        tally.latency_us.value_at_quantile(0.50) as f64 / 1000.0,
        tally.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        tally.latency_us.max() as f64 / 1000.0,
        tally.skipped,
        tally.broken,
    );
}

/// Calls `say` at `rate / senders` per second per sender for the whole run;
/// returns how many lines were stamped inside the measured window.
async fn drive<F, Fut>(plan: &Plan, base: Instant, say: F) -> u64
where
    F: Fn(usize, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let say = Arc::new(say);
    let per_sender = f64::from(plan.rate) / plan.senders as f64;
    let period = Duration::from_secs_f64(1.0 / per_sender);
    let run_for = WARM_UP + Duration::from_secs(plan.seconds);
    let (from, to) = window(plan);
    let in_window = Arc::new(AtomicU64::new(0));
    let mut senders = JoinSet::new();
    for sender in 0..plan.senders {
        let say = say.clone();
        let in_window = in_window.clone();
        senders.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            while base.elapsed() < run_for {
                ticks.tick().await;
                let elapsed = base.elapsed();
                if elapsed >= from && elapsed < to {
                    in_window.fetch_add(1, Ordering::Relaxed);
                }
                let stamp = u64::try_from(elapsed.as_nanos()).unwrap();
                say(sender, format!("t={stamp}")).await;
            }
        });
    }
    senders.join_all().await;
    tokio::time::sleep(SETTLE).await;
    in_window.load(Ordering::Relaxed)
}

fn window(plan: &Plan) -> (Duration, Duration) {
    (WARM_UP, WARM_UP + Duration::from_secs(plan.seconds))
}

/// Runs one member's `receive` loop, which records what it reads into a
/// tally, until the loop ends or `stop` fires; returns the tally.
async fn tally_until(stop: CancellationToken, receive: impl AsyncFnOnce(&mut Tally)) -> Tally {
    let mut tally = Tally::new();
    tokio::select! {
        () = stop.cancelled() => {}
        () = receive(&mut tally) => {}
    }
    tally
}

/// Stops the receivers and adds up what they saw of the `said` lines.
async fn total(said: u64, stop: &CancellationToken, receivers: JoinSet<Tally>) -> Tally {
    stop.cancel();
    let mut total = Tally::new();
    total.said = said;
    for tally in receivers.join_all().await {
        total.add(&tally);
    }
    total
}

async fn bench_hub(plan: &Plan) -> Tally {
    let hub = Arc::new(RoomHub::new(bench_config().hub_limits()));
    let room = RoomName::parse("bench").unwrap();
    let base = Instant::now();
    let stop = CancellationToken::new();
    let mut receivers = JoinSet::new();
    for i in 0..plan.members {
        let mut feed = hub
            .join(&room, &Nick::parse(&format!("m{i}")).unwrap(), None)
            .unwrap()
            .feed;
        let window = window(plan);
        receivers.spawn(tally_until(stop.clone(), async move |tally: &mut Tally| {
            loop {
                match feed.recv().await {
                    Ok(RoomEvent::Line(line)) => tally.record(base, &line.text, window),
                    Ok(RoomEvent::Presence(_)) => {}
                    Err(RecvError::Lagged(n)) => tally.skipped += n,
                    Err(RecvError::Closed) => return,
                }
            }
        }));
    }
    let sayers = hub.clone();
    let sayer_room = room.clone();
    let said = drive(plan, base, move |sender, text| {
        let hub = sayers.clone();
        let room = sayer_room.clone();
        async move {
            hub.say(&room, &Nick::parse(&format!("m{sender}")).unwrap(), text)
                .unwrap();
        }
    })
    .await;
    total(said, &stop, receivers).await
}

async fn channels(url: &str) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        let channel = Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        channels.push(channel);
    }
    channels
}

/// Joins `count` members (nicks from `first`) across `urls`' servers; returns
/// each member's outbox and starts its receiver.
async fn grpc_members(
    plan: &Plan,
    urls: &[String],
    base: Instant,
    stop: &CancellationToken,
    receivers: &mut JoinSet<Tally>,
) -> Vec<mpsc::Sender<ClientEvent>> {
    let mut pools = Vec::new();
    for url in urls {
        pools.push(channels(url).await);
    }
    let mut outboxes = Vec::new();
    for i in 0..plan.members {
        let pool = &pools[i % pools.len()];
        let channel = pool[(i / pools.len()) % pool.len()].clone();
        let (outbox, outgoing) = mpsc::channel(64);
        outbox
            .send(ClientEvent {
                event: Some(client_event::Event::Join(Join {
                    room: "bench".into(),
                    nick: format!("m{i}"),
                    since_seq: None,
                })),
            })
            .await
            .unwrap();
        let mut events = ChatServiceClient::new(channel)
            .chat(ReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        let window = window(plan);
        receivers.spawn(tally_until(stop.clone(), async move |tally: &mut Tally| {
            loop {
                match events.message().await {
                    Ok(Some(event)) => match event.event {
                        Some(Event::Message(m)) => tally.record(base, &m.text, window),
                        Some(Event::Gap(gap)) => tally.skipped += gap.to_seq - gap.from_seq + 1,
                        _ => {}
                    },
                    other => {
                        eprintln!("member stream ended early: {other:?}");
                        tally.broken += 1;
                        return;
                    }
                }
            }
        }));
        outboxes.push(outbox);
    }
    outboxes
}

async fn bench_grpc(plan: &Plan, urls: &[String]) -> Tally {
    let base = Instant::now();
    let stop = CancellationToken::new();
    let mut receivers = JoinSet::new();
    let outboxes = Arc::new(grpc_members(plan, urls, base, &stop, &mut receivers).await);
    // Held until the receivers stop: a dropped outbox ends its member's stream.
    let keep_open = outboxes.clone();
    let said = drive(plan, base, move |sender, text| {
        let outboxes = outboxes.clone();
        async move {
            let say = ClientEvent {
                event: Some(client_event::Event::Say(Say { text })),
            };
            let _ = outboxes[sender].send(say).await;
        }
    })
    .await;
    let total = total(said, &stop, receivers).await;
    drop(keep_open);
    total
}

#[tokio::main]
async fn main() {
    let plan = Plan::from_args();
    println!(
        "fan-out: {} members in one room, {} senders, {} lines/s, {}s measured",
        plan.members, plan.senders, plan.rate, plan.seconds
    );
    let hub = bench_hub(&plan).await;
    report("hub", &plan, &hub);

    let options = ServerOptions {
        connection_workers: plan.connection_workers,
        ..ServerOptions::default()
    };
    let server = member::start_with(options.clone(), bench_config()).await;
    let grpc = bench_grpc(&plan, &[server.url()]).await;
    report("grpc", &plan, &grpc);
    server.stop().await.unwrap();

    match &plan.nats_url {
        Some(url) => {
            // Everything made under the prefix goes when it is dropped.
            let prefix = member::Prefix::new(url);
            let a = member::start_replica_with(&options, url, &prefix.name, bench_config()).await;
            let b = member::start_replica_with(&options, url, &prefix.name, bench_config()).await;
            let nats = bench_grpc(&plan, &[a.url(), b.url()]).await;
            report("nats", &plan, &nats);
            a.stop().await.unwrap();
            b.stop().await.unwrap();
        }
        None => eprintln!("nats  SKIPPED: give --nats-url or QUARTET_TEST_NATS_URL"),
    }
}
