//! The gRPC adapter: protobuf in, a domain call, protobuf out. No rules here;
//! they live in [`crate::write`], [`crate::person`] and the store.

use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};
use quartet_proto::database::v1::{
    self as pb, CreatePersonRequest, DeletePersonRequest, DeletePersonResponse, GetPersonRequest,
    ImportFailure, ImportPeopleRequest, ImportPeopleResponse, ListPeopleRequest,
    ListPeopleResponse, PersonEvent, UpdatePersonRequest, WatchPeopleRequest,
    people_service_server::PeopleService,
};
use quartet_runtime::{DrainSignal, UntilDrained};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    change::{Change, ChangeKind},
    error::{DatabaseError, FieldError},
    listing::ListQuery,
    person::{NewPerson, Person, PersonFields, Timestamp, validate_id, validate_id_prefix},
    store::PeopleStore,
    write::Patch,
};

/// Most people in one ImportPeople message (the contract says so).
pub const MAX_IMPORT_BATCH: usize = 1000;
/// Failures reported in detail by one import; the rest are only counted.
const MAX_REPORTED_FAILURES: usize = 100;

fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = time.seconds_and_nanos();
    prost_types::Timestamp { seconds, nanos }
}

impl From<&Person> for pb::Person {
    fn from(person: &Person) -> Self {
        Self {
            id: person.id.clone(),
            name: person.fields.name.clone(),
            version: person.version,
            email: person.fields.email.clone().unwrap_or_default(),
            age: person.fields.age,
            create_time: Some(timestamp(person.create_time)),
            update_time: Some(timestamp(person.update_time)),
        }
    }
}

impl From<&pb::Person> for PersonFields {
    fn from(person: &pb::Person) -> Self {
        Self {
            name: person.name.clone(),
            email: (!person.email.is_empty()).then(|| person.email.clone()),
            age: person.age,
        }
    }
}

impl From<&Change> for PersonEvent {
    fn from(change: &Change) -> Self {
        let kind = match change.kind {
            ChangeKind::Created => pb::ChangeKind::Created,
            ChangeKind::Updated => pb::ChangeKind::Updated,
            ChangeKind::Deleted => pb::ChangeKind::Deleted,
        };
        Self {
            revision: change.revision,
            kind: kind.into(),
            person: Some(pb::Person::from(&change.person)),
            commit_time: Some(timestamp(change.commit_time)),
        }
    }
}

fn required(person: Option<pb::Person>) -> Result<pb::Person, FieldError> {
    person.ok_or_else(|| FieldError::new("person", "must be set"))
}

/// Implements `quartet.database.v1.PeopleService` over a [`PeopleStore`].
#[derive(Debug, Clone)]
pub struct PeopleHandler {
    store: PeopleStore,
    drain: DrainSignal,
}

impl PeopleHandler {
    /// A handler over `store` whose watches never drain: [`crate::server`]
    /// gives it the server's drain signal.
    pub fn new(store: PeopleStore) -> Self {
        Self {
            store,
            drain: DrainSignal::never(),
        }
    }

    /// The same handler, its watches ended when `drain` fires: what the
    /// hosting server decides.
    #[must_use]
    pub fn hosted(self, drain: DrainSignal) -> Self {
        Self { drain, ..self }
    }

    /// The store it serves, whose metrics the server registers.
    pub fn store(&self) -> &PeopleStore {
        &self.store
    }
}

/// The changes one `WatchPeople` call sends.
type Events = Pin<Box<dyn Stream<Item = Result<PersonEvent, Status>> + Send>>;

/// The running totals of one ImportPeople call.
#[derive(Default)]
struct ImportTally {
    seen: u64,
    response: ImportPeopleResponse,
}

impl ImportTally {
    /// Checks a batch: the valid people to store; the others counted as failed.
    fn check(&mut self, people: Vec<pb::Person>) -> Vec<NewPerson> {
        let mut valid = Vec::with_capacity(people.len());
        for person in people {
            let index = self.seen;
            self.seen += 1;
            let fields = PersonFields::from(&person);
            match NewPerson::new(person.id.clone(), fields) {
                Ok(new) => valid.push(new),
                Err(error) => {
                    self.response.failed += 1;
                    if self.response.failures.len() < MAX_REPORTED_FAILURES {
                        self.response.failures.push(ImportFailure {
                            index,
                            id: person.id,
                            reason: error.to_string(),
                        });
                    }
                }
            }
        }
        valid
    }

    fn count(&mut self, changes: &[Change]) {
        for change in changes {
            match change.kind {
                ChangeKind::Created => self.response.created += 1,
                _ => self.response.updated += 1,
            }
        }
    }
}

#[tonic::async_trait]
impl PeopleService for PeopleHandler {
    async fn create_person(
        &self,
        request: Request<CreatePersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let person = required(request.into_inner().person)?;
        let new = NewPerson::new(person.id.clone(), PersonFields::from(&person))?;
        let change = self.store.create(new).await?;
        Ok(Response::new(pb::Person::from(&change.person)))
    }

    async fn get_person(
        &self,
        request: Request<GetPersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let id = request.into_inner().id;
        validate_id("id", &id)?;
        let person = self.store.get(&id).await?;
        Ok(Response::new(pb::Person::from(&person)))
    }

    async fn update_person(
        &self,
        request: Request<UpdatePersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let request = request.into_inner();
        let person = required(request.person)?;
        validate_id("person.id", &person.id)?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        let patch = Patch::from_mask(&paths, &PersonFields::from(&person))?;
        let change = self
            .store
            .update(person.id, patch, request.expected_version)
            .await?;
        Ok(Response::new(pb::Person::from(&change.person)))
    }

    async fn delete_person(
        &self,
        request: Request<DeletePersonRequest>,
    ) -> Result<Response<DeletePersonResponse>, Status> {
        let request = request.into_inner();
        validate_id("id", &request.id)?;
        let change = self
            .store
            .delete(request.id, request.expected_version)
            .await?;
        Ok(Response::new(DeletePersonResponse {
            person: Some(pb::Person::from(&change.person)),
            revision: change.revision,
        }))
    }

    async fn list_people(
        &self,
        request: Request<ListPeopleRequest>,
    ) -> Result<Response<ListPeopleResponse>, Status> {
        let request = request.into_inner();
        let query = ListQuery::new(request.id_prefix, request.page_size, &request.page_token)?;
        let page = self.store.list(&query).await?;
        Ok(Response::new(ListPeopleResponse {
            next_page_token: page.next_page_token(&query.prefix),
            people: page.people.iter().map(pb::Person::from).collect(),
            revision: page.revision,
        }))
    }

    type WatchPeopleStream = Events;

    async fn watch_people(
        &self,
        request: Request<WatchPeopleRequest>,
    ) -> Result<Response<Self::WatchPeopleStream>, Status> {
        let request = request.into_inner();
        validate_id_prefix("id_prefix", &request.id_prefix)?;
        let changes = self
            .store
            .watch(request.since_revision, request.id_prefix)
            .await?;
        let events = changes.map(|change| {
            change
                .map(|change| PersonEvent::from(change.as_ref()))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(UntilDrained::new(
            events,
            &self.drain,
            || [Err(DatabaseError::ShuttingDown.into())],
        ))))
    }

    async fn import_people(
        &self,
        request: Request<Streaming<ImportPeopleRequest>>,
    ) -> Result<Response<ImportPeopleResponse>, Status> {
        let mut batches = request.into_inner();
        let mut tally = ImportTally::default();
        while let Some(batch) = batches.message().await? {
            if batch.people.len() > MAX_IMPORT_BATCH {
                let reason = format!(
                    "{} in one batch, at most {MAX_IMPORT_BATCH}; earlier batches are committed",
                    batch.people.len()
                );
                return Err(FieldError::new("people", reason).into());
            }
            let valid = tally.check(batch.people);
            let changes = self.store.import(valid).await?;
            tally.count(&changes);
        }
        Ok(Response::new(tally.response))
    }
}
