//! The people service's contract, over real sockets, run once against the
//! embedded store and once against PostgreSQL (skipped visibly without
//! QUARTET_TEST_POSTGRES_URL).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeSet;

use harness::{Backend, DEADLINE, Fixture, increment, person, start, start_with};
use quartet_proto::database::v1::{
    ChangeKind, CreatePersonRequest, DeletePersonRequest, GetPersonRequest, ImportPeopleRequest,
    ListPeopleRequest, Person, PersonEvent, UpdatePersonRequest, WatchPeopleRequest,
};
use tokio::time::timeout;
use tonic::{Code, Status, Streaming};

async fn create(fixture: &mut Fixture, person: Person) -> Result<Person, Status> {
    fixture
        .client
        .create_person(CreatePersonRequest {
            person: Some(person),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get(fixture: &mut Fixture, id: &str) -> Result<Person, Status> {
    fixture
        .client
        .get_person(GetPersonRequest { id: id.into() })
        .await
        .map(tonic::Response::into_inner)
}

async fn update(
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

async fn list_all(fixture: &mut Fixture, prefix: &str, page_size: u32) -> (Vec<String>, usize) {
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

async fn watch(
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

async fn next_event(events: &mut Streaming<PersonEvent>) -> PersonEvent {
    timeout(DEADLINE, events.message())
        .await
        .expect("no event in time")
        .unwrap()
        .expect("watch ended")
}

async fn create_then_get_round_trips(backend: Backend) {
    let mut fixture = start(&backend).await;
    let sent = Person {
        id: "12345678-Z".into(),
        name: "José Ñúñez".into(),
        email: "jose@example.com".into(),
        age: Some(42),
        ..Person::default()
    };
    let created = create(&mut fixture, sent.clone()).await.unwrap();
    assert_eq!((created.version, created.age), (1, Some(42)));
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);
    let read = get(&mut fixture, "12345678-Z").await.unwrap();
    assert_eq!(read, created);

    let status = create(&mut fixture, sent).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let status = get(&mut fixture, "nobody").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn invalid_input_names_the_field(backend: Backend) {
    let mut fixture = start(&backend).await;
    let cases = [
        (person("", "Ana"), "person.id: must not be empty"),
        (person("has space", "Ana"), "person.id:"),
        (person("p1", ""), "person.name: must not be empty"),
        (
            person("p1", &"x".repeat(201)),
            "person.name: longer than 200",
        ),
        (
            Person {
                email: "not-an-email".into(),
                ..person("p1", "Ana")
            },
            "person.email: not an email address",
        ),
        (
            Person {
                age: Some(151),
                ..person("p1", "Ana")
            },
            "person.age: 151 is above 150",
        ),
    ];
    for (sent, message) in cases {
        let status = create(&mut fixture, sent).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(message),
            "{message:?} vs {:?}",
            status.message()
        );
    }
    let missing = fixture
        .client
        .create_person(CreatePersonRequest { person: None })
        .await
        .unwrap_err();
    assert_eq!(missing.message(), "person: must be set");
    create(&mut fixture, person("p1", "Ana")).await.unwrap();
    let long_path = "p".repeat(100_000);
    for (mask, message) in [
        (&["id"][..], "update_mask: \"id\" cannot be changed"),
        (&["nick"][..], "update_mask: unknown field"),
        (&[long_path.as_str()][..], "update_mask: unknown field"),
    ] {
        let status = update(&mut fixture, person("p1", "Bea"), mask, None)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with(message),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 200, "only a prefix is quoted");
    }
    let status = get(&mut fixture, "").await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "id: must not be empty")
    );
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn updates_apply_the_mask_and_check_versions(backend: Backend) {
    let mut fixture = start(&backend).await;
    let full = Person {
        email: "ana@example.com".into(),
        age: Some(30),
        ..person("p1", "Ana")
    };
    create(&mut fixture, full).await.unwrap();

    // Only the age is named: the empty name in the request does not matter.
    let aged = update(
        &mut fixture,
        Person {
            age: Some(31),
            ..person("p1", "")
        },
        &["age"],
        Some(1),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            aged.name.as_str(),
            aged.email.as_str(),
            aged.age,
            aged.version
        ),
        ("Ana", "ana@example.com", Some(31), 2)
    );

    let stale = update(&mut fixture, person("p1", "Bea"), &["name"], Some(1))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    assert_eq!(
        get(&mut fixture, "p1").await.unwrap().name,
        "Ana",
        "a refused update changes nothing"
    );

    // No mask: the fields that are set.
    let renamed = update(&mut fixture, person("p1", "Bea"), &[], None)
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.age, renamed.version),
        ("Bea", Some(31), 3)
    );
    // "email" named but empty: cleared.
    let cleared = update(&mut fixture, person("p1", ""), &["email"], Some(3))
        .await
        .unwrap();
    assert_eq!((cleared.email.as_str(), cleared.version), ("", 4));
    let moment = |time: Option<prost_types::Timestamp>| time.map(|time| (time.seconds, time.nanos));
    assert!(moment(cleared.update_time) > moment(cleared.create_time));

    let missing = update(&mut fixture, person("ghost", "X"), &["name"], None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn deletes_check_existence_and_versions(backend: Backend) {
    let mut fixture = start(&backend).await;
    create(&mut fixture, person("p1", "Ana")).await.unwrap();
    let delete = |id: &str, expected_version| DeletePersonRequest {
        id: id.into(),
        expected_version,
    };
    let stale = fixture
        .client
        .delete_person(delete("p1", Some(7)))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let deleted = fixture
        .client
        .delete_person(delete("p1", Some(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.person.unwrap().name, "Ana");
    assert_eq!(deleted.revision, 2);
    assert_eq!(
        get(&mut fixture, "p1").await.unwrap_err().code(),
        Code::NotFound
    );
    let again = fixture
        .client
        .delete_person(delete("p1", None))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    // The id is free again.
    assert_eq!(
        create(&mut fixture, person("p1", "Ana"))
            .await
            .unwrap()
            .version,
        1
    );
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn lists_page_in_id_order_within_a_prefix(backend: Backend) {
    let mut fixture = start(&backend).await;
    let mut expected = Vec::new();
    for i in 0..23 {
        let id = format!("es:{i:03}");
        create(&mut fixture, person(&id, "Ana")).await.unwrap();
        expected.push(id);
        create(&mut fixture, person(&format!("fr:{i:03}"), "Anne"))
            .await
            .unwrap();
    }
    create(&mut fixture, person("es", "not in es:"))
        .await
        .unwrap();

    let (ids, pages) = list_all(&mut fixture, "es:", 5).await;
    assert_eq!(ids, expected);
    assert_eq!(pages, 5);
    let (all, _) = list_all(&mut fixture, "", 0).await;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 47);

    let first = fixture
        .client
        .list_people(ListPeopleRequest {
            page_size: 5,
            page_token: String::new(),
            id_prefix: "es:".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let foreign = fixture
        .client
        .list_people(ListPeopleRequest {
            page_size: 5,
            page_token: first.next_page_token,
            id_prefix: "fr:".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);
    let garbage = fixture
        .client
        .list_people(ListPeopleRequest {
            page_size: 5,
            page_token: "!!".into(),
            id_prefix: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (
            garbage.code(),
            garbage.message().starts_with("page_token: malformed")
        ),
        (Code::InvalidArgument, true)
    );
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn watch_from_now_streams_every_change_in_order(backend: Backend) {
    let mut fixture = start(&backend).await;
    create(&mut fixture, person("before", "Not seen"))
        .await
        .unwrap();
    let mut events = watch(&mut fixture, None, "").await.unwrap();

    create(&mut fixture, person("p1", "Ana")).await.unwrap();
    update(&mut fixture, person("p1", "Bea"), &["name"], None)
        .await
        .unwrap();
    fixture
        .client
        .delete_person(DeletePersonRequest {
            id: "p1".into(),
            expected_version: None,
        })
        .await
        .unwrap();

    let kinds: Vec<(u64, ChangeKind, String)> = [
        next_event(&mut events).await,
        next_event(&mut events).await,
        next_event(&mut events).await,
    ]
    .into_iter()
    .map(|event| (event.revision, event.kind(), event.person.unwrap().name))
    .collect();
    assert_eq!(
        kinds,
        [
            (2, ChangeKind::Created, "Ana".to_owned()),
            (3, ChangeKind::Updated, "Bea".to_owned()),
            (4, ChangeKind::Deleted, "Bea".to_owned()),
        ]
    );
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn list_then_watch_from_its_revision_misses_nothing(backend: Backend) {
    let mut fixture = start(&backend).await;
    for i in 0..5 {
        create(&mut fixture, person(&format!("a{i}"), "Ana"))
            .await
            .unwrap();
    }
    let listed = fixture
        .client
        .list_people(ListPeopleRequest {
            page_size: 0,
            page_token: String::new(),
            id_prefix: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.revision, 5);
    for i in 5..8 {
        create(&mut fixture, person(&format!("a{i}"), "Ana"))
            .await
            .unwrap();
    }
    let mut events = watch(&mut fixture, Some(listed.revision), "")
        .await
        .unwrap();
    create(&mut fixture, person("a8", "Ana")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next_event(&mut events).await;
        seen.push((event.revision, event.person.unwrap().id));
    }
    assert_eq!(
        seen,
        [
            (6, "a5".into()),
            (7, "a6".into()),
            (8, "a7".into()),
            (9, "a8".into())
        ]
    );

    // From the very beginning, with a prefix filter.
    let mut filtered = watch(&mut fixture, Some(0), "a7").await.unwrap();
    let event = next_event(&mut filtered).await;
    assert_eq!(
        (event.revision, event.person.unwrap().id.as_str()),
        (8, "a7")
    );

    let future = watch(&mut fixture, Some(1_000), "").await.unwrap_err();
    assert_eq!(future.code(), Code::OutOfRange, "{future:?}");
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn watching_from_a_trimmed_revision_is_out_of_range(backend: Backend) {
    let mut fixture = start_with(&backend, 1).await;
    // Enough changes to trigger trimming (it happens in bulk past ~1024 extra).
    let people: Vec<Person> = (0..1100)
        .map(|i| person(&format!("p{i:05}"), "Ana"))
        .collect();
    let batches: Vec<ImportPeopleRequest> = people
        .chunks(550)
        .map(|chunk| ImportPeopleRequest {
            people: chunk.to_vec(),
        })
        .collect();
    fixture
        .client
        .import_people(tokio_stream::iter(batches))
        .await
        .unwrap();
    let status = watch(&mut fixture, Some(0), "").await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("list again"),
        "{}",
        status.message()
    );
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn import_counts_created_updated_and_failed(backend: Backend) {
    let mut fixture = start(&backend).await;
    create(&mut fixture, person("exists", "Old Name"))
        .await
        .unwrap();
    let batches = vec![
        ImportPeopleRequest {
            people: vec![
                person("new1", "Ana"),
                person("exists", "New Name"),
                person("", "No Id"),
            ],
        },
        ImportPeopleRequest {
            people: vec![
                Person {
                    email: "bad".into(),
                    ..person("new2", "Bea")
                },
                person("new3", "Carla"),
            ],
        },
    ];
    let answer = fixture
        .client
        .import_people(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.created, answer.updated, answer.failed), (2, 1, 2));
    let failures: Vec<(u64, String)> = answer
        .failures
        .iter()
        .map(|failure| (failure.index, failure.reason.clone()))
        .collect();
    assert_eq!(
        failures,
        [
            (2, "person.id: must not be empty".to_owned()),
            (3, "person.email: not an email address".to_owned())
        ]
    );
    let updated = get(&mut fixture, "exists").await.unwrap();
    assert_eq!((updated.name.as_str(), updated.version), ("New Name", 2));
    assert_eq!(get(&mut fixture, "new3").await.unwrap().name, "Carla");

    let too_big = vec![ImportPeopleRequest {
        people: (0..1001).map(|i| person(&format!("x{i}"), "X")).collect(),
    }];
    let status = fixture
        .client
        .import_people(tokio_stream::iter(too_big))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

/// Many clients read-modify-write one record with expected versions: every
/// increment lands exactly once.
async fn concurrent_read_modify_write_loses_no_update(backend: Backend) {
    const WRITERS: usize = 8;
    const INCREMENTS: usize = 25;
    let mut fixture = start(&backend).await;
    create(&mut fixture, person("counter", "n=0"))
        .await
        .unwrap();

    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        writers.spawn(increment(fixture.client.clone(), "counter", INCREMENTS));
    }
    let conflicts: usize = timeout(DEADLINE, writers.join_all())
        .await
        .expect("writers hung")
        .into_iter()
        .sum();
    let last = get(&mut fixture, "counter").await.unwrap();
    assert_eq!(
        last.name,
        format!("n={}", WRITERS * INCREMENTS),
        "after {conflicts} conflicts"
    );
    assert_eq!(last.version, 1 + (WRITERS * INCREMENTS) as u64);
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn concurrent_creates_of_different_ids_all_commit(backend: Backend) {
    let mut fixture = start(&backend).await;
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..32 {
        let mut client = fixture.client.clone();
        writers.spawn(async move {
            for i in 0..10 {
                let sent = person(&format!("w{writer:02}-{i}"), "Ana");
                client
                    .create_person(CreatePersonRequest { person: Some(sent) })
                    .await
                    .unwrap();
            }
        });
    }
    timeout(DEADLINE, writers.join_all())
        .await
        .expect("writers hung");
    let (ids, _) = list_all(&mut fixture, "w", 1000).await;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 320);
    // Revisions are gap-free: 320 changes, 320 revisions.
    let mut events = watch(&mut fixture, Some(0), "").await.unwrap();
    for expected in 1..=320 {
        assert_eq!(next_event(&mut events).await.revision, expected);
    }
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn watches_end_with_unavailable_when_the_server_drains(backend: Backend) {
    let mut fixture = start(&backend).await;
    let mut events = watch(&mut fixture, None, "").await.unwrap();
    create(&mut fixture, person("p1", "Ana")).await.unwrap();
    next_event(&mut events).await;
    fixture.server.shutdown().request();
    let end = timeout(DEADLINE, events.message())
        .await
        .expect("watch held the drain");
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    timeout(DEADLINE, fixture.server.stopped())
        .await
        .unwrap()
        .unwrap();
    backend.clean_up().await;
}

macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(super::Backend::redb()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    if let Some(backend) = super::Backend::postgres().await {
                        super::$behaviour(backend).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    create_then_get_round_trips,
    invalid_input_names_the_field,
    updates_apply_the_mask_and_check_versions,
    deletes_check_existence_and_versions,
    lists_page_in_id_order_within_a_prefix,
    watch_from_now_streams_every_change_in_order,
    list_then_watch_from_its_revision_misses_nothing,
    watching_from_a_trimmed_revision_is_out_of_range,
    import_counts_created_updated_and_failed,
    concurrent_read_modify_write_loses_no_update,
    concurrent_creates_of_different_ids_all_commit,
    watches_end_with_unavailable_when_the_server_drains,
);
