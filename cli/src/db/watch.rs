//! `quartet db watch`: changes as they happen, from a revision on; after a
//! disconnect it reconnects as the resume policy says and resumes after the
//! last revision it printed.

use clap::Args;
use quartet_proto::database::v1::{
    ListPeopleRequest, PersonEvent, WatchPeopleRequest, people_service_client::PeopleServiceClient,
};
use tonic::{Status, Streaming};
use tracing::warn;

use super::{crud::IdPrefix, view::print_event};
use crate::{
    client::{ClientOptions, Connection},
    output::Printer,
    resume::{Resume, next_message},
};

#[derive(Debug, Args)]
pub(super) struct WatchArgs {
    #[command(flatten)]
    ids: IdPrefix,
    /// Start after this revision instead of now.
    #[arg(long)]
    since: Option<u64>,
}

/// Watches, reconnecting after a disconnect and resuming after the last
/// revision printed, so nothing is missed or printed twice.
pub(super) async fn watch(
    client: &ClientOptions,
    people: &mut PeopleServiceClient<Connection>,
    args: WatchArgs,
) -> anyhow::Result<()> {
    let printer = Printer::new(client.output);
    // "From now" is pinned to a revision, so a reconnect before the first event
    // still resumes from the right place.
    let mut last = match args.since {
        Some(since) => since,
        None => current_revision(client, people, &args.ids.prefix).await?,
    };
    let mut resume = Resume::new();
    loop {
        let request = WatchPeopleRequest {
            since_revision: Some(last),
            id_prefix: args.ids.prefix.clone(),
        };
        let ended = match people.watch_people(request).await {
            Ok(response) => {
                let changes = response.into_inner();
                print_changes(&printer, changes, &mut last, &mut resume).await?
            }
            Err(status) => status,
        };
        resume
            .pause_after(ended, |status, wait| {
                warn!(status = %status.message(), retry_in = ?wait, last, "watch interrupted; resuming");
            })
            .await?;
    }
}

/// The store's revision now, as a ListPeople answer carries it.
async fn current_revision(
    client: &ClientOptions,
    people: &mut PeopleServiceClient<Connection>,
    prefix: &str,
) -> Result<u64, Status> {
    let request = ListPeopleRequest {
        page_size: 1,
        page_token: String::new(),
        id_prefix: prefix.to_owned(),
    };
    let page = people.list_people(client.request(request)).await?;
    Ok(page.into_inner().revision)
}

/// Prints changes as they come, keeping `last` at the last revision printed;
/// returns the status the stream ended with.
async fn print_changes(
    printer: &Printer,
    mut changes: Streaming<PersonEvent>,
    last: &mut u64,
    resume: &mut Resume,
) -> anyhow::Result<Status> {
    loop {
        match next_message(&mut changes).await {
            Ok(change) => {
                print_event(printer, &change)?;
                *last = change.revision;
                resume.reset();
            }
            Err(status) => return Ok(status),
        }
    }
}
