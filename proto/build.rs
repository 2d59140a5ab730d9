//! Compiles `quartet/**/*.proto` with protox (pure Rust, no system `protoc`) and
//! generates prost messages and tonic clients and servers from the result. The same
//! descriptor set, source comments included, is written to `OUT_DIR` so servers can
//! serve it over reflection.
//!
//! The chat service is generated a second time, by hand from its descriptor
//! (`tonic-build`'s manual builder), with a Chat stream whose answers may be
//! encoded already: a room sends each line to every member, and encoding it
//! once per room instead of once per member is most of what fan-out costs
//! (BENCHMARKS.md, "Chat"). Generating it from the descriptor keeps its
//! routes those of the contract.

use std::{env, error::Error, fs, path::PathBuf};

use prost_types::{FileDescriptorSet, MethodDescriptorProto};

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
        .compile_fds(descriptors.clone())?;

    let chat = preencoded_chat_service(&descriptors)?;
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[chat]);
    Ok(())
}

/// `quartet.chat.v1.ChatService` as the descriptor has it, except that
/// server streams of `ServerEvent` answer with [`Outgoing`] messages, which
/// may be encoded already.
///
/// [`Outgoing`]: ../src/codec.rs
fn preencoded_chat_service(
    descriptors: &FileDescriptorSet,
) -> Result<tonic_build::manual::Service, Box<dyn Error>> {
    const PACKAGE: &str = "quartet.chat.v1";
    let service = descriptors
        .file
        .iter()
        .filter(|file| file.package() == PACKAGE)
        .flat_map(|file| &file.service)
        .find(|service| service.name() == "ChatService")
        .ok_or("no quartet.chat.v1.ChatService in the descriptors")?;
    let mut builder = tonic_build::manual::Service::builder()
        .name(service.name())
        .package(PACKAGE);
    for method in &service.method {
        builder = builder.method(preencoded_method(PACKAGE, method));
    }
    Ok(builder.build())
}

/// One method of the chat service, with the prost types of the contract and
/// the codec that lets `ServerEvent` streams send pre-encoded messages.
fn preencoded_method(package: &str, method: &MethodDescriptorProto) -> tonic_build::manual::Method {
    let rust_type = |proto: &str| {
        let name = proto.trim_start_matches(&format!(".{package}."));
        format!("crate::chat::v1::{name}")
    };
    let input = rust_type(method.input_type());
    let mut output = rust_type(method.output_type());
    let mut codec = "crate::codec::ProtoCodec";
    if method.server_streaming() && output.ends_with("::ServerEvent") {
        output = format!("crate::codec::Outgoing<{output}>");
        codec = "crate::codec::OutgoingCodec";
    }
    let mut builder = tonic_build::manual::Method::builder()
        .name(snake_case(method.name()))
        .route_name(method.name())
        .input_type(input)
        .output_type(output)
        .codec_path(codec);
    if method.client_streaming() {
        builder = builder.client_streaming();
    }
    if method.server_streaming() {
        builder = builder.server_streaming();
    }
    builder.build()
}

/// `ListRooms` as `list_rooms`: the Rust name of a method.
fn snake_case(name: &str) -> String {
    let mut snake = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    snake
}
