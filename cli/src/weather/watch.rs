//! `quartet weather watch STATION`: a reading every `--every`; a lost stream is
//! reopened by itself, as the resume policy says, for as long as it takes.

use std::time::Duration;

use jiff::tz::TimeZone;
use quartet_proto::weather::v1::{self as pb, WatchReadingsRequest};
use quartet_runtime::status_names::code_name;
use tonic::{Status, Streaming};

use super::{
    stations::{list_stations, zone_of},
    view::{ReadingJson, ShownReading},
};
use crate::{
    client::ClientOptions,
    output::{Printer, notice},
    resume::{Resume, next_message},
};

/// Prints readings as they come. The first answer is the server's: a request
/// it refuses, or no server, ends the command. After that a lost stream
/// (server restart, drain, network) is reopened, forever, until a failure that
/// is not transient.
pub(super) async fn watch(
    client: &ClientOptions,
    printer: &Printer,
    request: WatchReadingsRequest,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let mut service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    let mut readings = Readings {
        printer,
        zone: zone_of(&stations, &request.station_id),
        count,
        printed: 0,
        interrupted: false,
    };
    let mut stream = service.watch_readings(request.clone()).await?.into_inner();
    let mut resume = Resume::new();
    loop {
        let Some(ended) = readings.print(&mut stream, &mut resume).await? else {
            return Ok(());
        };
        stream = reopen(client, &request, ended, &mut resume).await?;
    }
}

/// Prints readings in the station's zone, and counts them.
struct Readings<'a> {
    printer: &'a Printer,
    zone: TimeZone,
    /// Readings to print before the command ends (`--count`), if any.
    count: Option<u64>,
    printed: u64,
    /// A stream broke since the last reading: the next one says it resumed.
    interrupted: bool,
}

impl Readings<'_> {
    /// Prints the stream's readings until `--count` is reached (`None`) or
    /// the stream ends (the status it ended with).
    async fn print(
        &mut self,
        stream: &mut Streaming<pb::Reading>,
        resume: &mut Resume,
    ) -> anyhow::Result<Option<Status>> {
        loop {
            let reading = match next_message(stream).await {
                Ok(reading) => reading,
                Err(status) => {
                    self.interrupted = true;
                    return Ok(Some(status));
                }
            };
            if std::mem::take(&mut self.interrupted) {
                notice("watch resumed");
            }
            resume.reset();
            let shown = ShownReading::new(&reading, &self.zone);
            self.printer
                .print(&shown.line(), &ReadingJson::new(&reading))?;
            self.printed += 1;
            if self.count.is_some_and(|count| self.printed >= count) {
                return Ok(None);
            }
        }
    }
}

/// Opens the watch again after it ended with `status`: a new connection each
/// attempt, with the resume policy's wait before each; fails with the first
/// failure that is not transient.
async fn reopen(
    client: &ClientOptions,
    request: &WatchReadingsRequest,
    mut status: Status,
    resume: &mut Resume,
) -> anyhow::Result<Streaming<pb::Reading>> {
    loop {
        resume.pause_after(status, tell_interrupted).await?;
        match open(client, request).await {
            Ok(stream) => return Ok(stream),
            Err(failed) => status = failed,
        }
    }
}

async fn open(
    client: &ClientOptions,
    request: &WatchReadingsRequest,
) -> Result<Streaming<pb::Reading>, Status> {
    let mut service = client.connect_weather().await?;
    Ok(service.watch_readings(request.clone()).await?.into_inner())
}

/// Tells the user on stderr why the watch stopped and when it tries again.
fn tell_interrupted(status: &Status, wait: Duration) {
    notice(&format!(
        "watch interrupted ({}: {}); reconnecting in {}",
        code_name(status.code()),
        status.message(),
        humantime::format_duration(wait),
    ));
}
