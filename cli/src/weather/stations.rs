//! `quartet weather stations`, and the station list `get` and `watch` read
//! first: it gives each station's time zone.

use jiff::tz::TimeZone;
use quartet_proto::weather::v1::{
    self as pb, ListStationsRequest, weather_service_client::WeatherServiceClient,
};
use tonic::Status;

use super::view::print_stations;
use crate::{
    client::{ClientOptions, Connection},
    output::Printer,
};

/// Prints every station the server lists.
pub(super) async fn stations(client: &ClientOptions, printer: &Printer) -> anyhow::Result<()> {
    let service = client.connect_weather().await?;
    let stations = list_stations(client, &service).await?;
    Ok(print_stations(printer, &stations)?)
}

/// Every station the server knows, with its time zone.
pub(super) async fn list_stations(
    client: &ClientOptions,
    service: &WeatherServiceClient<Connection>,
) -> Result<Vec<pb::Station>, Status> {
    let answer = client
        .read(
            service,
            &ListStationsRequest {},
            |mut service, request| async move { service.list_stations(request).await },
        )
        .await?;
    Ok(answer.stations)
}

/// The station's time zone, for reading and showing local times; UTC when the
/// server does not list the station (its answer will say why).
pub(super) fn zone_of(stations: &[pb::Station], station: &str) -> TimeZone {
    stations
        .iter()
        .find(|candidate| candidate.id == station)
        .and_then(|station| TimeZone::get(&station.time_zone).ok())
        .unwrap_or(TimeZone::UTC)
}
