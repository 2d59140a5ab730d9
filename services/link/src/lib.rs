//! # quartet-link
//!
//! How a server binary is linked, for its idle memory (issue 19: every server
//! idles at 8 MiB or less). A server's build script calls [`server_binary`],
//! which passes the linker two requests, so they hold for `cargo build` and
//! `cargo install` alike (a `.cargo/config.toml` would not reach the latter):
//!
//! - **Start-up code first**: `startup.order` (written by
//!   `bench/startup_order.py`) names the functions the servers run from process
//!   start to idle, and the linker places them at the start of `.text`. The
//!   kernel maps an executable's pages 64 KiB at a time around each page
//!   touched, so start-up code spread over the binary made most of it resident.
//! - **Packed relative relocations** (`DT_RELR`): the table the loader reads
//!   at start to relocate a position-independent binary shrinks from 400 KB
//!   (24 bytes a pointer) to a bitmap of a few KB, and is no longer resident.
//!   Needs glibc 2.36 at run time (Debian 12, our containers' base).
//!
//! Both only for x86_64 Linux with glibc, where rustc links with its own LLD
//! since Rust 1.90 (GNU ld has no symbol ordering file); elsewhere, or when
//! the build says which linker to use, nothing changes.
//!
//! # Layout
//! - This file: [`server_binary`] and the checks that keep it to LLD.
//! - `startup.order`: the generated list, one symbol a line.

use std::{env, process::Command};

/// The functions placed first, written by `bench/startup_order.py`.
const STARTUP_ORDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/startup.order");

/// The first Rust release that links x86_64 Linux binaries with its own LLD.
const LLD_BY_DEFAULT_SINCE_MINOR: u32 = 90;

/// Tells cargo, from a server crate's build script, how to link its binaries
/// (see the crate's documentation for what and why).
#[allow(
    clippy::print_stdout,
    reason = "a build script speaks to cargo on stdout"
)]
pub fn server_binary() {
    println!("cargo:rerun-if-changed={STARTUP_ORDER}");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    if !linking_with_rust_lld() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={STARTUP_ORDER}");
    // Names the list has but this binary lacks (other servers' functions,
    // or ones renamed since the list was written) are expected.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// Whether the binaries are linked by rustc's LLD: an x86_64 Linux glibc
/// target, a rustc recent enough, and no linker chosen by flags.
fn linking_with_rust_lld() -> bool {
    let target = |key: &str| env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || target("CARGO_CFG_TARGET_OS") != "linux"
        || target("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|flag| flags.contains(flag))
    {
        return false;
    }
    rustc_minor().is_some_and(|minor| minor >= LLD_BY_DEFAULT_SINCE_MINOR)
}

/// The minor version of the rustc cargo builds with (`rustc 1.95.0 (...)`).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
