//! `quartet weather watch STATION`: a reading every `--every`; a lost stream is
//! reopened by itself, with backoff, for as long as it takes.

use std::time::Duration;

use jiff::Timestamp;
use quartet_proto::weather::v1::WatchReadingsRequest;
use quartet_runtime::status_names::code_name;
use tonic::{Code, Status};

use super::{
    stations::{list_stations, zone_of},
    view::{ReadingJson, ShownReading},
};
use crate::{
    client::ClientOptions,
    output::{Printer, notice},
};

/// First wait before reconnecting a lost watch; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a watch that failed with `status` is worth resuming: the server or
/// the connection went away, as opposed to a request it will never accept.
fn worth_resuming(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

/// Exponential backoff with jitter, so a fleet of watchers does not reconnect
/// to a restarted server in lockstep.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: FIRST_BACKOFF,
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    /// The wait before the next attempt: half to all of the current step.
    fn next_wait(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(MAX_BACKOFF);
        // Jitter from the clock's nanoseconds: enough to spread a fleet, no RNG.
        let nanos = Timestamp::now().subsec_nanosecond().unsigned_abs();
        step / 2 + step.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

/// Prints readings as they come. After the first connection, a lost stream
/// (server restart, drain, network) is reopened with backoff, forever; a
/// request the server refuses ends the command.
pub(super) async fn watch(
    client: &ClientOptions,
    printer: &Printer,
    request: WatchReadingsRequest,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    let zone = zone_of(&stations, &request.station_id);
    let mut readings_printed = 0_u64;
    let mut backoff = Backoff::new();
    let mut interrupted = false;
    let mut service = Some(service);
    loop {
        let Some(mut current) = service.take() else {
            match client.connect_weather().await {
                Ok(reconnected) => service = Some(reconnected),
                Err(status) => wait_to_resume(&status, &mut backoff).await,
            }
            continue;
        };
        let mut readings = match current.watch_readings(request.clone()).await {
            Ok(response) => response.into_inner(),
            Err(status) if readings_printed > 0 && worth_resuming(&status) => {
                wait_to_resume(&status, &mut backoff).await;
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        loop {
            match readings.message().await {
                Ok(Some(reading)) => {
                    if std::mem::take(&mut interrupted) {
                        notice("watch resumed");
                    }
                    backoff.reset();
                    let shown = ShownReading::new(&reading, &zone);
                    printer.print(&shown.line(), &ReadingJson::new(&reading))?;
                    readings_printed += 1;
                    if count.is_some_and(|count| readings_printed >= count) {
                        return Ok(());
                    }
                }
                Ok(None) => {
                    // Servers end watches only with a status; treat a bare end
                    // as a lost connection.
                    let status = Status::unavailable("the server ended the stream");
                    interrupted = true;
                    wait_to_resume(&status, &mut backoff).await;
                    break;
                }
                Err(status) if worth_resuming(&status) => {
                    interrupted = true;
                    wait_to_resume(&status, &mut backoff).await;
                    break;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

async fn wait_to_resume(status: &Status, backoff: &mut Backoff) {
    let wait = backoff.next_wait();
    notice(&format!(
        "watch interrupted ({}: {}); reconnecting in {}",
        code_name(status.code()),
        status.message(),
        humantime::format_duration(Duration::from_millis(
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
        )),
    ));
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut backoff = Backoff::new();
        let first = backoff.next_wait();
        assert!(
            first >= FIRST_BACKOFF / 2 && first <= FIRST_BACKOFF,
            "{first:?}"
        );
        for _ in 0..20 {
            assert!(backoff.next_wait() <= MAX_BACKOFF);
        }
        assert!(backoff.next_wait() >= MAX_BACKOFF / 2);
        backoff.reset();
        assert!(backoff.next_wait() <= FIRST_BACKOFF);
    }

    #[test]
    fn only_connection_trouble_is_worth_resuming() {
        assert!(worth_resuming(&Status::unavailable("draining")));
        assert!(worth_resuming(&Status::unknown("connection reset")));
        assert!(!worth_resuming(&Status::not_found("no such station")));
        assert!(!worth_resuming(&Status::invalid_argument("interval")));
    }
}
