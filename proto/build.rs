//! Compiles `quartet/**/*.proto` with protox (pure Rust, no system `protoc`) and
//! generates prost messages and tonic clients and servers from the result. The same
//! descriptor set, source comments included, is written to `OUT_DIR` so servers can
//! serve it over reflection.

use std::{env, error::Error, fs, path::PathBuf};

/// Every contract, one file per service; order does not matter.
const PROTOS: &[&str] = &[
    "quartet/transform/v1/transform.proto",
    "quartet/database/v1/database.proto",
    "quartet/weather/v1/weather.proto",
    "quartet/chat/v1/chat.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    // tonic-prost-build does not emit these when given a descriptor set.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("quartet_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
