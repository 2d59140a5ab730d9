//! What one worker sends: one call of its scenario per [`Caller::call`].

use std::sync::Arc;

use quartet_proto::{
    database::v1::{
        CreatePersonRequest, GetPersonRequest, ImportPeopleRequest, Person, UpdatePersonRequest,
        people_service_client::PeopleServiceClient,
    },
    transform::v1::{
        Operation, TransformRequest, TransformResponse,
        transform_service_client::TransformServiceClient,
    },
    weather::v1::{GetReadingRequest, weather_service_client::WeatherServiceClient},
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::{BenchArgs, Scenario};
use crate::client::Connection;

/// Records the db-get scenario creates and then reads.
const GET_RECORDS: usize = 1000;
/// Stations weather-get cycles through (all in the built-in catalogue).
const STATIONS: [&str; 4] = ["london", "madrid", "cairo", "mumbai"];
/// The text every transform call carries.
const TEXT: &str = "hola, mundo";

fn upper() -> TransformRequest {
    TransformRequest {
        operation: Operation::Upper.into(),
        text: TEXT.into(),
    }
}

/// One worker's client and position.
pub(super) enum Caller {
    Transform(TransformServiceClient<Connection>),
    /// One long-lived `TransformStream`: each call is one request and its answer.
    TransformStream {
        requests: mpsc::Sender<TransformRequest>,
        answers: Streaming<TransformResponse>,
    },
    DbCreate {
        client: PeopleServiceClient<Connection>,
        prefix: String,
        next: u64,
    },
    DbGet {
        client: PeopleServiceClient<Connection>,
        ids: Arc<Vec<String>>,
        next: usize,
    },
    /// Updates one record of the worker's own, at the version it last saw.
    DbUpdate {
        client: PeopleServiceClient<Connection>,
        id: String,
        version: u64,
        /// Counts calls, so each one writes a different name.
        calls: u64,
    },
    WeatherGet {
        client: WeatherServiceClient<Connection>,
        next: usize,
    },
    /// A text-protocol connection: each call writes one request line and
    /// reads its one-line answer.
    Text {
        lines: Lines<BufReader<OwnedReadHalf>>,
        out: OwnedWriteHalf,
        /// The request lines, cycled through (newline included).
        requests: Arc<Vec<String>>,
        next: usize,
    },
}

impl Caller {
    /// The client worker `worker` calls with; `shared` is what [`prepare`] made.
    pub(super) async fn new(
        args: &BenchArgs,
        worker: usize,
        channel: Option<Connection>,
        shared: &Shared,
    ) -> anyhow::Result<Self> {
        let channel = || {
            channel
                .clone()
                .ok_or_else(|| anyhow::anyhow!("a gRPC scenario needs a connection"))
        };
        Ok(match args.scenario {
            Scenario::Transform => Self::Transform(TransformServiceClient::new(channel()?)),
            Scenario::TransformStream => {
                let (requests, outgoing) = mpsc::channel(1);
                let answers = TransformServiceClient::new(channel()?)
                    .transform_stream(ReceiverStream::new(outgoing))
                    .await?
                    .into_inner();
                Self::TransformStream { requests, answers }
            }
            Scenario::DbCreate => Self::DbCreate {
                client: PeopleServiceClient::new(channel()?),
                prefix: format!("{}-{worker}", shared.run_id),
                next: 0,
            },
            Scenario::DbGet => Self::DbGet {
                client: PeopleServiceClient::new(channel()?),
                ids: shared.ids.clone(),
                next: worker,
            },
            Scenario::DbUpdate => {
                let mut client = PeopleServiceClient::new(channel()?);
                let id = format!("{}-{worker}", shared.run_id);
                let created = client
                    .create_person(CreatePersonRequest {
                        person: Some(bench_person(id.clone())),
                    })
                    .await?
                    .into_inner();
                Self::DbUpdate {
                    client,
                    id,
                    version: created.version,
                    calls: 0,
                }
            }
            Scenario::WeatherGet => Self::WeatherGet {
                client: WeatherServiceClient::new(channel()?),
                next: worker,
            },
            Scenario::TextTransform | Scenario::TextDbGet => {
                let (read, out) = TcpStream::connect(&args.text_addr).await?.into_split();
                let requests = if args.scenario == Scenario::TextDbGet {
                    Arc::new(shared.ids.iter().map(|id| format!("GET {id}\n")).collect())
                } else {
                    Arc::new(vec![format!("UPPER {TEXT}\n")])
                };
                Self::Text {
                    lines: BufReader::new(read).lines(),
                    out,
                    requests,
                    next: worker,
                }
            }
            Scenario::Startup => anyhow::bail!("start-up is not a call scenario"),
        })
    }

    /// Makes one call and waits for its answer.
    pub(super) async fn call(&mut self) -> Result<(), Status> {
        match self {
            Self::Transform(client) => client.transform(upper()).await.map(drop),
            Self::TransformStream { requests, answers } => {
                requests
                    .send(upper())
                    .await
                    .map_err(|_| Status::unavailable("the stream's sender closed"))?;
                match answers.message().await? {
                    Some(_) => Ok(()),
                    None => Err(Status::unavailable("the server ended the stream")),
                }
            }
            Self::DbCreate {
                client,
                prefix,
                next,
            } => {
                *next += 1;
                client
                    .create_person(CreatePersonRequest {
                        person: Some(bench_person(format!("{prefix}-{next}"))),
                    })
                    .await
                    .map(drop)
            }
            Self::DbUpdate {
                client,
                id,
                version,
                calls,
            } => {
                *calls += 1;
                let request = UpdatePersonRequest {
                    person: Some(Person {
                        id: id.clone(),
                        name: format!("Bench Mark {calls}"),
                        ..Person::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["name".into()],
                    }),
                    expected_version: Some(*version),
                };
                let updated = client.update_person(request).await?.into_inner();
                *version = updated.version;
                Ok(())
            }
            Self::DbGet { client, ids, next } => {
                *next = (*next + 1) % ids.len();
                let id = ids[*next].clone();
                client.get_person(GetPersonRequest { id }).await.map(drop)
            }
            Self::WeatherGet { client, next } => {
                *next = (*next + 1) % STATIONS.len();
                let request = GetReadingRequest {
                    station_id: STATIONS[*next].into(),
                    ..GetReadingRequest::default()
                };
                client.get_reading(request).await.map(drop)
            }
            Self::Text {
                lines,
                out,
                requests,
                next,
            } => {
                let io = |error: std::io::Error| Status::unavailable(error.to_string());
                *next = (*next + 1) % requests.len();
                out.write_all(requests[*next].as_bytes())
                    .await
                    .map_err(io)?;
                match lines.next_line().await.map_err(io)? {
                    Some(answer) if answer.starts_with("ERR ") => Err(Status::unknown(answer)),
                    Some(_) => Ok(()),
                    None => Err(Status::unavailable("connection closed")),
                }
            }
        }
    }
}

/// The record db-create and db-update write.
fn bench_person(id: String) -> Person {
    Person {
        id,
        name: "Bench Mark".into(),
        email: "bench@example.com".into(),
        age: Some(33),
        ..Person::default()
    }
}

/// What every worker of a run shares.
#[derive(Default)]
pub(super) struct Shared {
    /// A prefix no earlier run used, so created ids never collide.
    run_id: String,
    /// Records db-get reads.
    ids: Arc<Vec<String>>,
}

/// Prepares a run: makes the records db-get reads.
pub(super) async fn prepare(
    scenario: Scenario,
    channel: Option<Connection>,
) -> anyhow::Result<Shared> {
    let run_id = run_id();
    let ids = match (scenario, channel) {
        (Scenario::DbGet | Scenario::TextDbGet, Some(channel)) => {
            let ids: Vec<String> = (0..GET_RECORDS).map(|i| format!("{run_id}-{i}")).collect();
            let people = ids
                .iter()
                .map(|id| Person {
                    id: id.clone(),
                    name: "Bench Mark".into(),
                    ..Person::default()
                })
                .collect();
            PeopleServiceClient::new(channel)
                .import_people(tokio_stream::iter([ImportPeopleRequest { people }]))
                .await?;
            Arc::new(ids)
        }
        _ => Arc::default(),
    };
    Ok(Shared { run_id, ids })
}

fn run_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_micros());
    format!("bench-{micros}")
}
