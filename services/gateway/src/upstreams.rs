//! One lazily connected, multiplexed gRPC channel per service. tonic reconnects
//! by itself after a failure, so the gateway recovers when a service comes back;
//! while it is down, calls fail UNAVAILABLE within the upstream timeout.

use std::time::Duration;

use quartet_client::{Connection, connect_lazy};
use quartet_proto::{
    chat::v1::chat_service_client::ChatServiceClient,
    database::v1::people_service_client::PeopleServiceClient,
    transform::v1::transform_service_client::TransformServiceClient,
    weather::v1::weather_service_client::WeatherServiceClient,
};
use tonic::{Request, Status};

use crate::options::UpstreamOptions;

/// The gRPC clients of every service the gateway bridges.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub(crate) transform: TransformServiceClient<Connection>,
    pub(crate) people: PeopleServiceClient<Connection>,
    pub(crate) weather: WeatherServiceClient<Connection>,
    pub(crate) chat: ChatServiceClient<Connection>,
    /// Deadline of each call.
    pub(crate) timeout: Duration,
}

impl Upstreams {
    /// Clients of the services at `options`' addresses; nothing connects until
    /// the first call.
    pub fn new(options: &UpstreamOptions, timeout: Duration) -> Result<Self, Status> {
        let connect = |address: &str| {
            connect_lazy(address, timeout, &options.credentials, &options.resolution)
        };
        Ok(Self {
            transform: TransformServiceClient::new(connect(&options.transform_addr)?),
            people: PeopleServiceClient::new(connect(&options.database_addr)?),
            weather: WeatherServiceClient::new(connect(&options.weather_addr)?),
            chat: ChatServiceClient::new(connect(&options.chat_addr)?),
            timeout,
        })
    }

    /// A request carrying the upstream deadline.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }
}
