//! One call per command: create, get, update and delete a person, and list
//! people (page after page of ListPeople).

use clap::Args;
use quartet_proto::database::v1::{
    CreatePersonRequest, DeletePersonRequest, GetPersonRequest, ListPeopleRequest, Person,
    UpdatePersonRequest, people_service_client::PeopleServiceClient,
};

use super::view::print_people;
use crate::client::{ClientOptions, Connection};

/// Most people one ListPeople page may carry (the server's own bound).
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// The id (for example a national id).
    id: String,
    /// The full name.
    name: String,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    age: Option<u32>,
}

#[derive(Debug, Args)]
pub(super) struct GetArgs {
    id: String,
}

#[derive(Debug, Args)]
pub(super) struct UpdateArgs {
    id: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, conflicts_with = "clear_email")]
    email: Option<String>,
    #[arg(long, conflicts_with = "clear_age")]
    age: Option<u32>,
    /// Remove the e-mail address.
    #[arg(long)]
    clear_email: bool,
    /// Remove the age.
    #[arg(long)]
    clear_age: bool,
    /// Only if the stored version is this one (else the call fails).
    #[arg(long)]
    expected_version: Option<u64>,
}

#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    id: String,
    /// Only if the stored version is this one.
    #[arg(long)]
    expected_version: Option<u64>,
}

/// `--prefix`, of `list` and `watch`.
#[derive(Debug, Args)]
pub(super) struct IdPrefix {
    /// Only ids starting with this.
    #[arg(long, default_value = "")]
    pub(super) prefix: String,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    ids: IdPrefix,
    /// Stop after this many people.
    #[arg(long)]
    limit: Option<usize>,
}

/// The database as the one-call commands use it: the generated client, and
/// the flags that bound each call (`--timeout`) and shape what is printed.
pub(super) struct People<'a> {
    pub(super) client: &'a ClientOptions,
    pub(super) service: PeopleServiceClient<Connection>,
}

impl People<'_> {
    pub(super) async fn create(&mut self, args: CreateArgs) -> anyhow::Result<()> {
        let person = Person {
            id: args.id,
            name: args.name,
            email: args.email.unwrap_or_default(),
            age: args.age,
            ..Person::default()
        };
        let request = self.client.request(CreatePersonRequest {
            person: Some(person),
        });
        let created = self.service.create_person(request).await?;
        self.print(&[created.into_inner()])
    }

    /// One person, with one more try on another endpoint if the first was
    /// unavailable (a read changes nothing).
    pub(super) async fn get(&self, args: GetArgs) -> anyhow::Result<()> {
        let request = GetPersonRequest { id: args.id };
        let person = self
            .client
            .read(&self.service, &request, |mut people, request| async move {
                people.get_person(request).await
            })
            .await?;
        self.print(&[person])
    }

    pub(super) async fn update(&mut self, args: UpdateArgs) -> anyhow::Result<()> {
        let mut paths = Vec::new();
        if args.name.is_some() {
            paths.push("name".to_owned());
        }
        if args.email.is_some() || args.clear_email {
            paths.push("email".to_owned());
        }
        if args.age.is_some() || args.clear_age {
            paths.push("age".to_owned());
        }
        let request = self.client.request(UpdatePersonRequest {
            person: Some(Person {
                id: args.id,
                name: args.name.unwrap_or_default(),
                email: args.email.unwrap_or_default(),
                age: args.age,
                ..Person::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
            expected_version: args.expected_version,
        });
        let updated = self.service.update_person(request).await?;
        self.print(&[updated.into_inner()])
    }

    pub(super) async fn delete(&mut self, args: DeleteArgs) -> anyhow::Result<()> {
        let request = self.client.request(DeletePersonRequest {
            id: args.id,
            expected_version: args.expected_version,
        });
        let deleted = self.service.delete_person(request).await?;
        let deleted: Vec<Person> = deleted.into_inner().person.into_iter().collect();
        self.print(&deleted)
    }

    /// People in id order, page by page until `--limit` or the last page;
    /// each page is a read, tried once more on another endpoint if need be.
    pub(super) async fn list(&self, args: ListArgs) -> anyhow::Result<()> {
        let limit = args.limit.unwrap_or(usize::MAX);
        let mut found = Vec::new();
        let mut token = String::new();
        while found.len() < limit {
            let page_size =
                u32::try_from(limit - found.len()).map_or(MAX_PAGE, |left| left.min(MAX_PAGE));
            let request = ListPeopleRequest {
                page_size,
                page_token: token,
                id_prefix: args.ids.prefix.clone(),
            };
            let page = self
                .client
                .read(&self.service, &request, |mut people, request| async move {
                    people.list_people(request).await
                })
                .await?;
            found.extend(page.people);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        found.truncate(limit);
        self.print(&found)
    }

    fn print(&self, people: &[Person]) -> anyhow::Result<()> {
        Ok(print_people(self.client.output, people)?)
    }
}
