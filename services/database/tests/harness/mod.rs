//! Starting a people server on either backend for a test, the calls tests make
//! to it, and cleaning up after.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use quartet_database::StoreOptions;
use quartet_e2e::external::TestSchema;
use quartet_proto::database::v1::{
    ChangeKind, CreatePersonRequest, GetPersonRequest, ListPeopleRequest, Person, PersonEvent,
    UpdatePersonRequest, WatchPeopleRequest, people_service_client::PeopleServiceClient,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tokio::time::timeout;
use tonic::{Code, Status, Streaming, transport::Channel};

/// Every test finishes well within this.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Where a test's people live.
pub(crate) enum Backend {
    /// A fresh embedded store in a temporary directory.
    Redb(tempfile::TempDir),
    /// A fresh schema in the test PostgreSQL, dropped when the test ends
    /// (also when it panics).
    Postgres(TestSchema),
}

impl Backend {
    pub(crate) fn redb() -> Self {
        Self::Redb(tempfile::tempdir().unwrap())
    }

    /// A fresh schema, or `None` after a visible skip line on stderr without
    /// PostgreSQL (under `CI=true`, a failure instead).
    pub(crate) async fn postgres() -> Option<Self> {
        TestSchema::create("database tests on PostgreSQL")
            .await
            .map(Self::Postgres)
    }

    pub(crate) fn options(&self, retention: u64) -> StoreOptions {
        match self {
            Self::Redb(dir) => StoreOptions {
                data_dir: dir.path().to_owned(),
                database_url: None,
                database_url_file: None,
                change_retention: retention,
            },
            Self::Postgres(schema) => StoreOptions {
                data_dir: "unused".into(),
                database_url: Some(schema.url.clone()),
                database_url_file: None,
                change_retention: retention,
            },
        }
    }

    /// A connection of its own to the test's PostgreSQL schema, for playing
    /// another client of the same database.
    pub(crate) async fn outside_client(&self) -> tokio_postgres::Client {
        let Self::Postgres(schema) = self else {
            panic!("only a PostgreSQL backend has an outside");
        };
        let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Drops what the test created.
    pub(crate) async fn clean_up(self) {
        if let Self::Postgres(schema) = self {
            schema.drop_schema().await.unwrap();
        }
    }
}

/// A running server and a client of it.
pub(crate) struct Fixture {
    pub(crate) server: RunningServer,
    pub(crate) client: PeopleServiceClient<Channel>,
    /// Whether revisions go up by one per change (the embedded store), or
    /// only increase (PostgreSQL numbers them by transaction id).
    pub(crate) consecutive_revisions: bool,
}

impl Fixture {
    /// Asserts that `seen`, as a watch from `after` delivered it, is in
    /// revision order: increasing, and on the embedded store the very next ones.
    pub(crate) fn assert_in_order(&self, after: u64, seen: &[Seen]) {
        let revisions: Vec<u64> = seen.iter().map(|event| event.revision).collect();
        assert!(
            revisions.is_sorted_by(|earlier, later| earlier < later),
            "revisions out of order: {revisions:?}"
        );
        assert!(revisions.first().is_none_or(|first| *first > after));
        if self.consecutive_revisions {
            let expected: Vec<u64> = (after + 1..).take(revisions.len()).collect();
            assert_eq!(revisions, expected, "revisions with gaps");
        }
    }
}

/// A server on `backend` keeping the default change log, and a client of it.
pub(crate) async fn start(backend: &Backend) -> Fixture {
    start_with(backend, 100_000).await
}

/// A server on `backend` keeping the last `retention` changes, and a client of it.
pub(crate) async fn start_with(backend: &Backend, retention: u64) -> Fixture {
    let handler = quartet_database::handler(&backend.options(retention))
        .await
        .unwrap();
    let server = quartet_database::server(ServerOptions::default(), Shutdown::new(), handler)
        .spawn_on("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = PeopleServiceClient::connect(server.url()).await.unwrap();
    Fixture {
        server,
        client,
        consecutive_revisions: matches!(backend, Backend::Redb(_)),
    }
}

/// Runs `behaviour` against a fresh server on `backend`, then stops the server
/// (within [`DEADLINE`]) and drops what the test created.
pub(crate) async fn run(backend: Backend, behaviour: impl AsyncFnOnce(&mut Fixture)) {
    let mut fixture = start(&backend).await;
    behaviour(&mut fixture).await;
    timeout(DEADLINE, fixture.server.stop())
        .await
        .expect("the server did not stop")
        .unwrap();
    backend.clean_up().await;
}

/// CreatePerson.
pub(crate) async fn create(fixture: &mut Fixture, person: Person) -> Result<Person, Status> {
    fixture
        .client
        .create_person(CreatePersonRequest {
            person: Some(person),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// GetPerson.
pub(crate) async fn get(fixture: &mut Fixture, id: &str) -> Result<Person, Status> {
    fixture
        .client
        .get_person(GetPersonRequest { id: id.into() })
        .await
        .map(tonic::Response::into_inner)
}

/// UpdatePerson of the fields in `mask` (none: the fields that are set).
pub(crate) async fn update(
    fixture: &mut Fixture,
    person: Person,
    mask: &[&str],
    expected_version: Option<u64>,
) -> Result<Person, Status> {
    let update_mask = (!mask.is_empty()).then(|| prost_types::FieldMask {
        paths: mask.iter().map(|path| (*path).to_owned()).collect(),
    });
    fixture
        .client
        .update_person(UpdatePersonRequest {
            person: Some(person),
            update_mask,
            expected_version,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every id under `prefix`, page by page, and how many pages it took.
pub(crate) async fn list_all(
    fixture: &mut Fixture,
    prefix: &str,
    page_size: u32,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = fixture
            .client
            .list_people(ListPeopleRequest {
                page_size,
                page_token: token,
                id_prefix: prefix.into(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        ids.extend(page.people.into_iter().map(|person| person.id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        token = page.next_page_token;
    }
}

/// WatchPeople from `since` (none: from now) of the ids under `prefix`.
pub(crate) async fn watch(
    fixture: &mut Fixture,
    since: Option<u64>,
    prefix: &str,
) -> Result<Streaming<PersonEvent>, Status> {
    fixture
        .client
        .watch_people(WatchPeopleRequest {
            since_revision: since,
            id_prefix: prefix.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The next event of a watch, which must come within [`DEADLINE`].
pub(crate) async fn next_event(events: &mut Streaming<PersonEvent>) -> PersonEvent {
    timeout(DEADLINE, events.message())
        .await
        .expect("no event in time")
        .unwrap()
        .expect("watch ended")
}

/// A watch event as tests compare it: what happened to whom, at which revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) revision: u64,
    pub(crate) kind: ChangeKind,
    pub(crate) id: String,
    pub(crate) name: String,
}

impl Seen {
    /// What happened to whom, without the revision.
    pub(crate) fn change(&self) -> (ChangeKind, &str, &str) {
        (self.kind, &self.id, &self.name)
    }
}

/// The next `count` events of a watch, each within [`DEADLINE`].
pub(crate) async fn next_events(events: &mut Streaming<PersonEvent>, count: usize) -> Vec<Seen> {
    let mut seen = Vec::with_capacity(count);
    for _ in 0..count {
        let event = next_event(events).await;
        let kind = event.kind();
        let person = event.person.unwrap();
        seen.push(Seen {
            revision: event.revision,
            kind,
            id: person.id,
            name: person.name,
        });
    }
    seen
}

/// A person with only an id and a name.
pub(crate) fn person(id: &str, name: &str) -> Person {
    Person {
        id: id.into(),
        name: name.into(),
        ..Person::default()
    }
}

/// Increments the counter kept in `id`'s name ("n=<count>") `times` times, each
/// a read-modify-write conditional on the version read, retried on conflict.
/// Returns how many conflicts it met.
pub(crate) async fn increment(
    mut client: PeopleServiceClient<Channel>,
    id: &str,
    times: usize,
) -> usize {
    let mut conflicts = 0;
    for _ in 0..times {
        loop {
            let current = client
                .get_person(GetPersonRequest { id: id.into() })
                .await
                .unwrap()
                .into_inner();
            let count: usize = current.name.trim_start_matches("n=").parse().unwrap();
            let request = UpdatePersonRequest {
                person: Some(person(id, &format!("n={}", count + 1))),
                update_mask: None,
                expected_version: Some(current.version),
            };
            match client.update_person(request).await {
                Ok(_) => break,
                Err(status) if status.code() == Code::FailedPrecondition => conflicts += 1,
                Err(status) => panic!("unexpected {status:?}"),
            }
        }
    }
    conflicts
}
