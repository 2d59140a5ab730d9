//! The people service's contract, over real sockets, run once against the
//! embedded store and once against PostgreSQL (skipped visibly without
//! QUARTET_TEST_POSTGRES_URL).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeSet;

use harness::{
    Backend, DEADLINE, Fixture, Seen, create, get, increment, list_all, next_event, next_events,
    person, run, start_with, update, watch,
};
use quartet_proto::database::v1::{
    ChangeKind, CreatePersonRequest, DeletePersonRequest, ImportPeopleRequest, ListPeopleRequest,
    Person,
};
use tokio::time::timeout;
use tonic::Code;

async fn create_then_get_round_trips(fixture: &mut Fixture) {
    let sent = Person {
        id: "12345678-Z".into(),
        name: "José Ñúñez".into(),
        email: "jose@example.com".into(),
        age: Some(42),
        ..Person::default()
    };
    let created = create(fixture, sent.clone()).await.unwrap();
    assert_eq!((created.version, created.age), (1, Some(42)));
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);
    let read = get(fixture, "12345678-Z").await.unwrap();
    assert_eq!(read, created);

    let status = create(fixture, sent).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let status = get(fixture, "nobody").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

async fn invalid_input_names_the_field(fixture: &mut Fixture) {
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
        let status = create(fixture, sent).await.unwrap_err();
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
    create(fixture, person("p1", "Ana")).await.unwrap();
    let long_path = "p".repeat(100_000);
    for (mask, message) in [
        (&["id"][..], "update_mask: \"id\" cannot be changed"),
        (&["nick"][..], "update_mask: unknown field"),
        (&[long_path.as_str()][..], "update_mask: unknown field"),
    ] {
        let status = update(fixture, person("p1", "Bea"), mask, None)
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
    let status = get(fixture, "").await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "id: must not be empty")
    );
}

async fn updates_apply_the_mask_and_check_versions(fixture: &mut Fixture) {
    let full = Person {
        email: "ana@example.com".into(),
        age: Some(30),
        ..person("p1", "Ana")
    };
    create(fixture, full).await.unwrap();

    // Only the age is named: the empty name in the request does not matter.
    let aged = update(
        fixture,
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

    let stale = update(fixture, person("p1", "Bea"), &["name"], Some(1))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    assert_eq!(
        get(fixture, "p1").await.unwrap().name,
        "Ana",
        "a refused update changes nothing"
    );

    // No mask: the fields that are set.
    let renamed = update(fixture, person("p1", "Bea"), &[], None)
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.age, renamed.version),
        ("Bea", Some(31), 3)
    );
    // "email" named but empty: cleared.
    let cleared = update(fixture, person("p1", ""), &["email"], Some(3))
        .await
        .unwrap();
    assert_eq!((cleared.email.as_str(), cleared.version), ("", 4));
    let moment = |time: Option<prost_types::Timestamp>| time.map(|time| (time.seconds, time.nanos));
    assert!(moment(cleared.update_time) > moment(cleared.create_time));

    let missing = update(fixture, person("ghost", "X"), &["name"], None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn deletes_check_existence_and_versions(fixture: &mut Fixture) {
    create(fixture, person("p1", "Ana")).await.unwrap();
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
    // The answer's revision is the delete's, right after the create's.
    let mut events = watch(fixture, Some(0), "").await.unwrap();
    let seen = next_events(&mut events, 2).await;
    assert_eq!(
        (seen[0].kind, seen[1].kind, seen[1].revision),
        (ChangeKind::Created, ChangeKind::Deleted, deleted.revision)
    );
    fixture.assert_in_order(0, &seen);
    assert_eq!(get(fixture, "p1").await.unwrap_err().code(), Code::NotFound);
    let again = fixture
        .client
        .delete_person(delete("p1", None))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    // The id is free again.
    assert_eq!(
        create(fixture, person("p1", "Ana")).await.unwrap().version,
        1
    );
}

async fn lists_page_in_id_order_within_a_prefix(fixture: &mut Fixture) {
    let mut expected = Vec::new();
    for i in 0..23 {
        let id = format!("es:{i:03}");
        create(fixture, person(&id, "Ana")).await.unwrap();
        expected.push(id);
        create(fixture, person(&format!("fr:{i:03}"), "Anne"))
            .await
            .unwrap();
    }
    create(fixture, person("es", "not in es:")).await.unwrap();

    let (ids, pages) = list_all(fixture, "es:", 5).await;
    assert_eq!(ids, expected);
    assert_eq!(pages, 5);
    let (all, _) = list_all(fixture, "", 0).await;
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
}

async fn watch_from_now_streams_every_change_in_order(fixture: &mut Fixture) {
    create(fixture, person("before", "Not seen")).await.unwrap();
    let mut events = watch(fixture, None, "").await.unwrap();

    create(fixture, person("p1", "Ana")).await.unwrap();
    update(fixture, person("p1", "Bea"), &["name"], None)
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

    let seen = next_events(&mut events, 3).await;
    assert_eq!(
        seen.iter().map(Seen::change).collect::<Vec<_>>(),
        [
            (ChangeKind::Created, "p1", "Ana"),
            (ChangeKind::Updated, "p1", "Bea"),
            (ChangeKind::Deleted, "p1", "Bea"),
        ]
    );
    // "before" took the revision just before the watch started.
    let mut before = watch(fixture, Some(0), "before").await.unwrap();
    let before = next_event(&mut before).await.revision;
    fixture.assert_in_order(before, &seen);
}

async fn list_then_watch_from_its_revision_misses_nothing(fixture: &mut Fixture) {
    for i in 0..5 {
        create(fixture, person(&format!("a{i}"), "Ana"))
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
    if fixture.consecutive_revisions {
        assert_eq!(listed.revision, 5);
    }
    for i in 5..8 {
        create(fixture, person(&format!("a{i}"), "Ana"))
            .await
            .unwrap();
    }
    let mut events = watch(fixture, Some(listed.revision), "").await.unwrap();
    create(fixture, person("a8", "Ana")).await.unwrap();
    let seen = next_events(&mut events, 4).await;
    let ids: Vec<&str> = seen.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(ids, ["a5", "a6", "a7", "a8"]);
    fixture.assert_in_order(listed.revision, &seen);

    // From the very beginning, with a prefix filter.
    let mut filtered = watch(fixture, Some(0), "a7").await.unwrap();
    let event = next_event(&mut filtered).await;
    assert_eq!(
        (event.revision, event.person.unwrap().id.as_str()),
        (seen[2].revision, "a7")
    );

    let future = watch(fixture, Some(u64::MAX), "").await.unwrap_err();
    assert_eq!(future.code(), Code::OutOfRange, "{future:?}");
}

async fn watching_from_a_trimmed_revision_is_out_of_range(backend: Backend) {
    let mut fixture = start_with(&backend, 1).await;
    // Enough changes to trigger trimming (it happens in bulk past ~1024 extra).
    // PostgreSQL trims only changes no running transaction can still add to
    // (and other tests' transactions share the server), so import again until
    // the trim has reached back past revision 0, within the deadline.
    let trimmed = async {
        for round in 0.. {
            let batches: Vec<ImportPeopleRequest> = (0..2)
                .map(|batch| ImportPeopleRequest {
                    people: (0..550)
                        .map(|i| person(&format!("p{round}-{batch}-{i:03}"), "Ana"))
                        .collect(),
                })
                .collect();
            fixture
                .client
                .import_people(tokio_stream::iter(batches))
                .await
                .unwrap();
            if let Err(status) = watch(&mut fixture, Some(0), "").await {
                return status;
            }
        }
        unreachable!()
    };
    let status = timeout(DEADLINE, trimmed)
        .await
        .expect("the change log was never trimmed");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("list again"),
        "{}",
        status.message()
    );
    fixture.server.stop().await.unwrap();
    backend.clean_up().await;
}

async fn import_counts_created_updated_and_failed(fixture: &mut Fixture) {
    create(fixture, person("exists", "Old Name")).await.unwrap();
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
    let updated = get(fixture, "exists").await.unwrap();
    assert_eq!((updated.name.as_str(), updated.version), ("New Name", 2));
    assert_eq!(get(fixture, "new3").await.unwrap().name, "Carla");

    let too_big = vec![ImportPeopleRequest {
        people: (0..1001).map(|i| person(&format!("x{i}"), "X")).collect(),
    }];
    let status = fixture
        .client
        .import_people(tokio_stream::iter(too_big))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

/// Many clients read-modify-write one record with expected versions: every
/// increment lands exactly once.
async fn concurrent_read_modify_write_loses_no_update(fixture: &mut Fixture) {
    const WRITERS: usize = 8;
    const INCREMENTS: usize = 25;
    create(fixture, person("counter", "n=0")).await.unwrap();

    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        writers.spawn(increment(fixture.client.clone(), "counter", INCREMENTS));
    }
    let conflicts: usize = timeout(DEADLINE, writers.join_all())
        .await
        .expect("writers hung")
        .into_iter()
        .sum();
    let last = get(fixture, "counter").await.unwrap();
    assert_eq!(
        last.name,
        format!("n={}", WRITERS * INCREMENTS),
        "after {conflicts} conflicts"
    );
    assert_eq!(last.version, 1 + (WRITERS * INCREMENTS) as u64);
}

async fn concurrent_creates_of_different_ids_all_commit(fixture: &mut Fixture) {
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
    let (ids, _) = list_all(fixture, "w", 1000).await;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 320);
    // The log is gap-free: 320 changes, each once, in revision order.
    let mut events = watch(fixture, Some(0), "").await.unwrap();
    let seen = next_events(&mut events, 320).await;
    let created: BTreeSet<&String> = seen.iter().map(|event| &event.id).collect();
    assert_eq!(created, ids.iter().collect());
    fixture.assert_in_order(0, &seen);
}

async fn watches_end_with_unavailable_when_the_server_drains(fixture: &mut Fixture) {
    let mut events = watch(fixture, None, "").await.unwrap();
    create(fixture, person("p1", "Ana")).await.unwrap();
    next_event(&mut events).await;
    fixture.server.shutdown().request();
    let end = timeout(DEADLINE, events.message())
        .await
        .expect("watch held the drain")
        .unwrap_err();
    assert_eq!(end.code(), Code::Unavailable);
    assert_eq!(
        end.message(),
        "server is shutting down; watch again from the last revision received"
    );
    // `run` then sees the drained server stop within the deadline.
}

macro_rules! on_both_backends {
    (
        on_a_fresh_server: $($served:ident),* $(,)?;
        starting_their_own: $($own:ident),* $(,)?;
    ) => {
        mod redb {
            $(
                #[tokio::test]
                async fn $served() {
                    super::run(super::Backend::redb(), super::$served).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $own() {
                    super::$own(super::Backend::redb()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $served() {
                    if let Some(backend) = super::Backend::postgres().await {
                        super::run(backend, super::$served).await;
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $own() {
                    if let Some(backend) = super::Backend::postgres().await {
                        super::$own(backend).await;
                    }
                }
            )*
        }
    };
}

on_both_backends! {
    on_a_fresh_server:
        create_then_get_round_trips,
        invalid_input_names_the_field,
        updates_apply_the_mask_and_check_versions,
        deletes_check_existence_and_versions,
        lists_page_in_id_order_within_a_prefix,
        watch_from_now_streams_every_change_in_order,
        list_then_watch_from_its_revision_misses_nothing,
        import_counts_created_updated_and_failed,
        concurrent_read_modify_write_loses_no_update,
        concurrent_creates_of_different_ids_all_commit,
        watches_end_with_unavailable_when_the_server_drains;
    // Needs a server that keeps a short change log.
    starting_their_own:
        watching_from_a_trimmed_revision_is_out_of_range;
}
