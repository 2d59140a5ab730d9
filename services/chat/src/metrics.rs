//! The chat service's own metrics, counted from the hub at scrape time so they
//! never drift from the truth: `quartet_chat_rooms` and `quartet_chat_members`.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::gauge::ConstGauge,
};

use crate::hub::RoomHub;

/// Reads room and member counts off a [`RoomHub`] when scraped.
#[derive(Debug)]
pub struct HubCollector {
    hub: Arc<RoomHub>,
}

impl HubCollector {
    /// A collector for `hub`.
    pub fn new(hub: Arc<RoomHub>) -> Self {
        Self { hub }
    }
}

fn to_gauge(count: usize) -> ConstGauge {
    ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX))
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let rooms = self.hub.rooms();
        let members: usize = rooms.iter().map(|room| room.members.len()).sum();
        for (name, help, value) in [
            (
                "chat_rooms",
                "Rooms with members or history held by this server",
                rooms.len(),
            ),
            (
                "chat_members",
                "Members in rooms held by this server (every replica's, with NATS)",
                members,
            ),
        ] {
            let gauge = to_gauge(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
