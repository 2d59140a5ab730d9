//! `quartet`: the one command line for every Quartet service.
//!
//! # Layout
//! - `cli`: the command line as clap parses it; hands each command to its module.
//! - `client`: the flags every client command shares, a connection per
//!   service, and the timeout of unary calls.
//! - `resume`: the one resume policy of watched streams (transient codes,
//!   backoff with jitter).
//! - `output`: text or JSON lines on stdout.
//! - `failure`: how errors become messages on stderr and exit codes.
//! - `table`: aligned text tables.
//! - one module per command family: `transform`, `health`, `serve`, and the
//!   folders `db/`, `weather/`, `chat/`, `bench/` (each `mod.rs` names its
//!   files). Commands import `client`, `resume` and the helpers above, never
//!   `cli` or each other.

mod bench;
mod chat;
mod cli;
mod client;
mod db;
mod failure;
mod health;
mod output;
mod resume;
mod serve;
mod table;
mod transform;
mod weather;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return failure::report(&error.into()),
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(error) => failure::report(&error),
    }
}
