//! The command line, as clap sees it.

use std::{process::ExitCode, time::Duration};

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;

use crate::{chat, connect::parse_address, health, output::OutputFormat, serve, transform};

/// The Quartet command line: call every service, check health, run servers.
#[derive(Debug, Parser)]
#[command(name = "quartet", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) client: ClientOptions,
    #[command(subcommand)]
    command: Command,
}

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

    /// Address of the chat service.
    #[arg(long, global = true, env = "QUARTET_CHAT_ADDR", default_value = "http://127.0.0.1:50054", value_parser = parse_address)]
    pub(crate) chat_addr: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upper-case, lower-case or reverse text (the transform service).
    Transform(transform::TransformArgs),
    /// Join a chat room: type lines, see everyone's; `bye` or Ctrl-D leaves.
    Chat(chat::ChatArgs),
    /// Check servers' health, with grpc_health_probe's exit codes.
    Health(health::HealthArgs),
    /// Run servers in this process, for local use.
    Serve(serve::ServeArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Transform(args) => transform::run(&self.client, args).await,
            Command::Chat(args) => chat::run(&self.client, args).await,
            Command::Health(args) => health::run(&self.client, args).await,
            Command::Serve(args) => serve::run(args).await,
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
