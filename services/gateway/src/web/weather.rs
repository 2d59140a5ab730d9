//! `/ws/weather?station=ID&every=5s`: a station's readings as they come, one
//! text frame each in the weather protocol's `ALL` format; and `/stations`,
//! the catalogue as JSON for the page's picker.

use std::time::Duration;

use axum::{
    Json,
    extract::{Query, State, ws::WebSocketUpgrade},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
};
use futures_util::{Stream, StreamExt as _};
use quartet_client::retry_read;
use quartet_proto::weather::v1::{ListStationsRequest, WatchReadingsRequest};
use serde::{Deserialize, Serialize};

use super::{socket, state::WebState};
use crate::{
    chat::session::{Input, LineSink},
    protocol::weather::all_line,
    reply::{self, err, status_line},
};

/// Time between readings when the query names none.
const DEFAULT_EVERY: Duration = Duration::from_secs(5);

/// The query of `/ws/weather`.
#[derive(Debug, Deserialize)]
pub struct WatchQuery {
    /// The station; the gateway's default station when absent.
    station: Option<String>,
    /// Time between readings (`5s`, `1m`); the service bounds it.
    every: Option<String>,
}

/// Upgrades to a socket of readings.
pub async fn upgrade(
    State(state): State<WebState>,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limits = state.limits;
    state
        .clone()
        .upgrade(&headers, upgrade, move |websocket| async move {
            let (input, mut sink, writer) = socket::open(websocket, limits);
            let writing = tokio::spawn(writer);
            let line = watch(&state, query, input, &mut sink).await;
            if let Some(line) = line {
                let _ = sink.send(&line).await;
            }
            drop(sink);
            let _ = writing.await;
        })
}

/// The watch request a query stands for, or the `ERR` line that refuses it.
fn request(query: WatchQuery, default_station: &str) -> Result<WatchReadingsRequest, String> {
    let every = match query.every.as_deref() {
        None => DEFAULT_EVERY,
        Some(text) => humantime::parse_duration(text).map_err(|error| {
            err(
                "INVALID_ARGUMENT",
                &format!("every: {error} (for example every=5s)"),
            )
        })?,
    };
    let interval = prost_types::Duration::try_from(every)
        .map_err(|_| err("INVALID_ARGUMENT", "every: too long"))?;
    Ok(WatchReadingsRequest {
        station_id: query.station.unwrap_or_else(|| default_station.to_owned()),
        metrics: Vec::new(),
        interval: Some(interval),
    })
}

/// Sends readings until the client goes, the stream ends or the gateway
/// drains; returns the last line to send, if any.
async fn watch(
    state: &WebState,
    query: WatchQuery,
    mut input: impl Stream<Item = Input> + Unpin,
    sink: &mut socket::WebSink,
) -> Option<String> {
    let request = match request(query, &state.default_station) {
        Ok(request) => request,
        Err(line) => return Some(line),
    };
    let mut weather = state.upstreams.weather.clone();
    let mut readings = match weather.watch_readings(request).await {
        Ok(readings) => readings.into_inner(),
        Err(status) => return Some(status_line(&status)),
    };
    loop {
        tokio::select! {
            reading = readings.message() => match reading {
                Ok(Some(reading)) => {
                    sink.send(&all_line(&reading)).await.ok()?;
                }
                Ok(None) => return None,
                Err(status) => return Some(status_line(&status)),
            },
            line = input.next() => match line {
                None => return None,
                Some(Input::TooLong) => return Some(reply::too_long().text().to_owned()),
                Some(_) => {
                    let refusal = err("INVALID_ARGUMENT", "this socket only sends readings");
                    sink.send(&refusal).await.ok()?;
                }
            },
            () = state.drain.draining() => return Some("* gateway shutting down".into()),
        }
    }
}

/// One station in `/stations`.
#[derive(Debug, Serialize)]
pub struct StationEntry {
    /// Its id, for `/ws/weather?station=`.
    id: String,
    /// Its name, for people.
    name: String,
}

/// `/stations`: every station, as `[{"id": .., "name": ..}]`.
pub async fn stations(State(state): State<WebState>) -> Response {
    let upstreams = &state.upstreams;
    let listed = retry_read(|| {
        let mut weather = upstreams.weather.clone();
        let request = upstreams.request(ListStationsRequest {});
        async move { weather.list_stations(request).await }
    })
    .await;
    match listed {
        Ok(list) => {
            let entries: Vec<StationEntry> = list
                .into_inner()
                .stations
                .into_iter()
                .map(|station| StationEntry {
                    id: station.id,
                    name: station.name,
                })
                .collect();
            Json(entries).into_response()
        }
        Err(status) => (StatusCode::BAD_GATEWAY, status_line(&status)).into_response(),
    }
}
