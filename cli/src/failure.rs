//! Exit codes and error messages, in one place.
//!
//! 0 ok, 1 the call failed (the gRPC status on stderr), 2 usage (clap's own);
//! `quartet health` follows grpc_health_probe instead (see `health`).

use std::process::ExitCode;

use quartet_runtime::status_names::code_name;

/// Exit code of a failed call or any other runtime failure.
pub(crate) const CALL_FAILED: u8 = 1;
/// Exit code of a command line that cannot work, as clap uses it.
pub(crate) const USAGE: u8 = 2;

/// A command line that parsed but makes no sense; exits with [`USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// Prints `error: ...` on stderr and returns the exit code for it. A gRPC status
/// anywhere in the chain is printed as `CODE: message`, the form grpcurl users
/// know. A closed stdout (`quartet ... | head`) is not an error.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    let message = match error.downcast_ref::<tonic::Status>() {
        Some(status) => format!("{}: {}", code_name(status.code()), status.message()),
        None => format!("{error:#}"),
    };
    #[allow(clippy::print_stderr)] // The one place the CLI reports a failure.
    {
        eprintln!("error: {message}");
    }
    if error.is::<UsageError>() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::from(CALL_FAILED)
    }
}
