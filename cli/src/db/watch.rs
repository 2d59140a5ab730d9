//! `quartet db watch`: changes as they happen, from a revision on; after a
//! disconnect it reconnects and resumes after the last revision it printed.

use std::time::Duration;

use clap::Args;
use quartet_proto::database::v1::{
    ListPeopleRequest, WatchPeopleRequest, people_service_client::PeopleServiceClient,
};
use tonic::Code;
use tracing::warn;

use super::view::print_event;
use crate::{
    client::{ClientOptions, Connection},
    output::Printer,
};

/// Longest wait between watch reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub(super) struct WatchArgs {
    /// Only ids starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Start after this revision instead of now.
    #[arg(long)]
    since: Option<u64>,
}

/// Watches, reconnecting with backoff after a disconnect and resuming after the
/// last revision printed, so nothing is missed or printed twice.
pub(super) async fn watch(
    client: &ClientOptions,
    people: &mut PeopleServiceClient<Connection>,
    args: WatchArgs,
) -> anyhow::Result<()> {
    let WatchArgs { prefix, since } = args;
    let printer = Printer::new(client.output);
    // "From now" is pinned to a revision, so a reconnect before the first event
    // still resumes from the right place.
    let mut last = if let Some(since) = since {
        since
    } else {
        let request = ListPeopleRequest {
            page_size: 1,
            page_token: String::new(),
            id_prefix: prefix.clone(),
        };
        people
            .list_people(client.request(request))
            .await?
            .into_inner()
            .revision
    };
    let mut delay = Duration::from_millis(200);
    loop {
        let request = WatchPeopleRequest {
            since_revision: Some(last),
            id_prefix: prefix.clone(),
        };
        let ended = match people.watch_people(request).await {
            Ok(response) => {
                let mut events = response.into_inner();
                loop {
                    match events.message().await {
                        Ok(Some(event)) => {
                            print_event(&printer, &event)?;
                            last = event.revision;
                            delay = Duration::from_millis(200);
                        }
                        Ok(None) => break tonic::Status::unavailable("the server ended the watch"),
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        if !matches!(
            ended.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ) {
            return Err(ended.into());
        }
        warn!(status = %ended.message(), retry_in = ?delay, last, "watch interrupted; resuming");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}
