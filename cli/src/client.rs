//! How client commands reach the services: the flags they share, a connection
//! per service, and the timeout every unary call carries.
//!
//! Connections come from the runtime's client side (credentials, TLS, bearer
//! token, trace context and balancing are shared with the gateway); commands
//! ask this module for them and never assemble them from the flags themselves.

use std::{future::Future, time::Duration};

use clap::Args;
use quartet_client::{Credentials, Resolution, connect, retry_read};
use quartet_proto::{
    chat::v1::chat_service_client::ChatServiceClient,
    database::v1::people_service_client::PeopleServiceClient,
    transform::v1::transform_service_client::TransformServiceClient,
    weather::v1::weather_service_client::WeatherServiceClient,
};
use tonic::{Request, Response, Status};

use crate::output::OutputFormat;

pub(crate) use quartet_client::{Connection, parse_address};

/// Flags every client command shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientOptions {
    /// How to print results.
    #[arg(long, global = true, env = "QUARTET_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,

    /// Longest to wait for a connection and for each unary call.
    #[arg(long, global = true, env = "QUARTET_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,

    /// Address of the transform service.
    #[arg(long, global = true, env = "QUARTET_TRANSFORM_ADDR", default_value = "http://127.0.0.1:50051", value_parser = parse_address)]
    pub(crate) transform_addr: String,

    #[command(flatten)]
    pub(crate) credentials: Credentials,

    /// How dns:/// addresses are kept current.
    #[command(flatten)]
    pub(crate) resolution: Resolution,

    /// Address of the people database.
    #[arg(long, global = true, env = "QUARTET_DATABASE_ADDR", default_value = "http://127.0.0.1:50052", value_parser = parse_address)]
    pub(crate) database_addr: String,
    /// Address of the weather service.
    #[arg(long, global = true, env = "QUARTET_WEATHER_ADDR", default_value = "http://127.0.0.1:50053", value_parser = parse_address)]
    pub(crate) weather_addr: String,
    /// Address of the chat service.
    #[arg(long, global = true, env = "QUARTET_CHAT_ADDR", default_value = "http://127.0.0.1:50054", value_parser = parse_address)]
    pub(crate) chat_addr: String,
}

impl ClientOptions {
    /// A connection to `address` with these credentials, waiting at most
    /// `--timeout` for an endpoint to answer; for commands that pick their own
    /// address (`health --addr`, `bench`).
    pub(crate) async fn connect(&self, address: &str) -> Result<Connection, Status> {
        connect(address, self.timeout, &self.credentials, &self.resolution).await
    }

    /// The transform service at `--transform-addr`.
    pub(crate) async fn connect_transform(
        &self,
    ) -> Result<TransformServiceClient<Connection>, Status> {
        Ok(TransformServiceClient::new(
            self.connect(&self.transform_addr).await?,
        ))
    }

    /// The people database at `--database-addr`.
    pub(crate) async fn connect_database(&self) -> Result<PeopleServiceClient<Connection>, Status> {
        Ok(PeopleServiceClient::new(
            self.connect(&self.database_addr).await?,
        ))
    }

    /// The weather service at `--weather-addr`.
    pub(crate) async fn connect_weather(&self) -> Result<WeatherServiceClient<Connection>, Status> {
        Ok(WeatherServiceClient::new(
            self.connect(&self.weather_addr).await?,
        ))
    }

    /// The chat service at `--chat-addr`.
    pub(crate) async fn connect_chat(&self) -> Result<ChatServiceClient<Connection>, Status> {
        Ok(ChatServiceClient::new(self.connect(&self.chat_addr).await?))
    }

    /// `message` as the request of a unary call, which fails DEADLINE_EXCEEDED
    /// after `--timeout` (the server honours the same deadline). Streams the
    /// CLI watches carry none: they last as long as the user wants.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A unary call that changes nothing (a transform, a reading, a lookup):
    /// `call` of `service` with `message` under `--timeout`, tried once more if
    /// the endpoint it reached was unavailable (the retry goes to another).
    pub(crate) async fn read<S, M, R, F, Fut>(
        &self,
        service: &S,
        message: &M,
        call: F,
    ) -> Result<R, Status>
    where
        S: Clone,
        M: Clone,
        F: Fn(S, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let answer = retry_read(|| call(service.clone(), self.request(message.clone()))).await?;
        Ok(answer.into_inner())
    }
}
