//! `quartet health`: asks `grpc.health.v1.Health/Check`, the same call as
//! grpc_health_probe and Kubernetes' gRPC probes, and exits with
//! grpc_health_probe's codes so scripts written for it keep working.

use std::process::ExitCode;

use clap::Args;
use quartet_proto::{
    chat::v1::chat_service_server::SERVICE_NAME as CHAT,
    database::v1::people_service_server::SERVICE_NAME as DATABASE,
    transform::v1::transform_service_server::SERVICE_NAME as TRANSFORM,
    weather::v1::weather_service_server::SERVICE_NAME as WEATHER,
};
use serde::Serialize;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    client::{ClientOptions, parse_address},
    failure::UsageError,
    output::Printer,
};

/// How a check ended, as grpc_health_probe's exit codes; the worst of all
/// targets (the largest) is the command's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Verdict {
    Serving = 0,
    ConnectionFailed = 2,
    RpcFailed = 3,
    NotServing = 4,
}

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// Which service to ask about: a Quartet service (`transform`, `database`, `weather`, `chat`), a full gRPC
    /// service name, or "" for the server as a whole. Without it, every Quartet
    /// service is checked at its configured address.
    #[arg(long)]
    service: Option<String>,
    /// Check this address instead of the service's configured one.
    #[arg(long, value_parser = parse_address)]
    addr: Option<String>,
}

/// One health check to make.
struct Target {
    /// Short name for people ("transform"), or the address when there is none.
    label: String,
    address: String,
    /// The name sent in the request; "" is the whole server.
    service: String,
}

#[derive(Serialize)]
struct Report<'a> {
    target: &'a str,
    address: &'a str,
    service: &'a str,
    status: &'a str,
}

/// A Quartet service the CLI knows: its short name, gRPC name and address.
struct KnownService {
    short: &'static str,
    full: &'static str,
    address: String,
}

fn known_services(client: &ClientOptions) -> Vec<KnownService> {
    vec![
        KnownService {
            short: "transform",
            full: TRANSFORM,
            address: client.transform_addr.clone(),
        },
        KnownService {
            short: "database",
            full: DATABASE,
            address: client.database_addr.clone(),
        },
        KnownService {
            short: "weather",
            full: WEATHER,
            address: client.weather_addr.clone(),
        },
        KnownService {
            short: "chat",
            full: CHAT,
            address: client.chat_addr.clone(),
        },
    ]
}

fn targets(client: &ClientOptions, args: HealthArgs) -> anyhow::Result<Vec<Target>> {
    let known = known_services(client);
    let Some(service) = args.service else {
        // The server as a whole: at --addr, or at every known service's address.
        let targets = match args.addr {
            Some(address) => vec![Target {
                label: address.clone(),
                address,
                service: String::new(),
            }],
            None => known
                .into_iter()
                .map(|known| Target {
                    label: known.short.to_owned(),
                    address: known.address,
                    service: String::new(),
                })
                .collect(),
        };
        return Ok(targets);
    };
    let found = known
        .into_iter()
        .find(|known| known.short == service || known.full == service);
    let target = match (found, args.addr) {
        (Some(known), addr) => Target {
            label: known.short.to_owned(),
            address: addr.unwrap_or(known.address),
            service: known.full.to_owned(),
        },
        (None, Some(address)) => Target {
            label: address.clone(),
            address,
            service,
        },
        (None, None) => {
            return Err(UsageError(format!(
                "{service:?} is not a Quartet service; give --addr to check it at an address"
            ))
            .into());
        }
    };
    Ok(vec![target])
}

pub(crate) async fn run(client: &ClientOptions, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new(client.output);
    let mut worst = Verdict::Serving;
    for target in targets(client, args)? {
        let (code, status) = check(client, &target).await;
        let report = Report {
            target: &target.label,
            address: &target.address,
            service: &target.service,
            status: &status,
        };
        let text = if target.label == target.address {
            format!("{} {status}", target.address)
        } else {
            format!("{} {} {status}", target.label, target.address)
        };
        printer.print(&text, &report)?;
        worst = worst.max(code);
    }
    Ok(ExitCode::from(worst as u8))
}

/// Checks one target: its exit code and what to print as its status.
async fn check(client: &ClientOptions, target: &Target) -> (Verdict, String) {
    let channel = match client.connect(&target.address).await {
        Ok(channel) => channel,
        Err(status) => {
            return (
                Verdict::ConnectionFailed,
                format!("CONNECTION_FAILED ({})", status.message()),
            );
        }
    };
    let request = client.request(HealthCheckRequest {
        service: target.service.clone(),
    });
    match HealthClient::new(channel).check(request).await {
        Ok(response) => match response.into_inner().status() {
            ServingStatus::Serving => (Verdict::Serving, "SERVING".to_owned()),
            other => (Verdict::NotServing, other.as_str_name().to_owned()),
        },
        Err(status) => (
            Verdict::RpcFailed,
            format!(
                "RPC_FAILED ({}: {})",
                quartet_runtime::status_names::code_name(status.code()),
                status.message()
            ),
        ),
    }
}
