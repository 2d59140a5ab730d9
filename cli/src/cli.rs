//! The command line, as clap sees it: parses it and hands each command to its
//! module.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;
use quartet_runtime::{TelemetryOptions, telemetry};
use tracing::Instrument as _;

use crate::{bench, chat, client::ClientOptions, db, health, serve, transform, weather};

/// The Quartet command line: call every service, check health, run servers.
#[derive(Debug, Parser)]
#[command(name = "quartet", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    client: ClientOptions,
    #[command(flatten)]
    telemetry: TelemetryOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upper-case, lower-case or reverse text (the transform service).
    Transform(transform::TransformArgs),
    /// Create, read, update, delete, list, watch and import people (the database).
    Db(db::DbArgs),
    /// Weather stations and their readings, once or periodically (the weather service).
    Weather(weather::WeatherArgs),
    /// Join a chat room: type lines, see everyone's; `bye` or Ctrl-D leaves.
    Chat(chat::ChatArgs),
    /// Check servers' health, with grpc_health_probe's exit codes.
    Health(health::HealthArgs),
    /// Load-test a service and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Run servers in this process, for local use.
    Serve(Box<serve::ServeArgs>),
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        // Servers log what they do; client commands only what goes wrong.
        let level = if matches!(self.command, Command::Serve(_)) {
            "info"
        } else {
            "warn"
        };
        let _telemetry = telemetry::init(&self.telemetry, "quartet", level)?;
        let span = tracing::info_span!("quartet", command = self.command.name());
        self.dispatch().instrument(span).await
    }

    async fn dispatch(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Transform(args) => transform::run(&self.client, args).await,
            Command::Db(args) => db::run(&self.client, args).await,
            Command::Weather(args) => weather::run(&self.client, args).await,
            Command::Chat(args) => chat::run(&self.client, args).await,
            Command::Health(args) => health::run(&self.client, args).await,
            Command::Serve(args) => Box::pin(serve::run(&self.client, *args)).await,
            Command::Bench(args) => bench::run(&self.client, args).await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "quartet",
                    &mut std::io::stdout(),
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl Command {
    /// The subcommand's name, for the root span of exported traces.
    fn name(&self) -> &'static str {
        match self {
            Self::Transform(_) => "transform",
            Self::Db(_) => "db",
            Self::Weather(_) => "weather",
            Self::Chat(_) => "chat",
            Self::Health(_) => "health",
            Self::Bench(_) => "bench",
            Self::Serve(_) => "serve",
            Self::Completions { .. } => "completions",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
