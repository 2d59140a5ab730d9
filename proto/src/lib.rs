//! # quartet-proto
//!
//! Quartet's public contracts: the Protobuf files under `proto/quartet/` compiled
//! into prost messages and tonic clients and servers. This crate only generates;
//! services map these types to their own domain types at their gRPC edge.
//!
//! # Layout
//! - [`transform::v1`], [`database::v1`], [`weather::v1`], [`chat::v1`]: one module
//!   per Protobuf package, named as the package is.
//! - [`codec`]: the codec every generated client and server uses; it answers a
//!   request that does not decode with INVALID_ARGUMENT rather than INTERNAL,
//!   and starts each call's buffers at 1 KiB rather than 8. Its
//!   [`codec::Outgoing`] messages may be encoded once and sent on many
//!   streams, as the chat server's [`chat::v1::preencoded`] service does.
//! - [`FILE_DESCRIPTOR_SET`]: every file, with comments, for server reflection.
//! - [`MessageLimit`]: one way to give every generated server the message
//!   size limit.

pub mod codec;

/// The encoded `FileDescriptorSet` of every Quartet `.proto` file and its imports,
/// source comments included, so reflection clients see the documentation too.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quartet_descriptor.bin"));

/// `quartet.transform.v1`: upper, lower and reverse text.
pub mod transform {
    /// Version 1 of the transform contract.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("quartet.transform.v1");
    }
}

/// `quartet.database.v1`: the people database.
pub mod database {
    /// Version 1 of the people database contract.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("quartet.database.v1");
    }
}

/// `quartet.weather.v1`: weather stations and their readings.
pub mod weather {
    /// Version 1 of the weather contract.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("quartet.weather.v1");
    }
}

/// `quartet.chat.v1`: chat rooms over bidirectional streams.
pub mod chat {
    /// Version 1 of the chat contract.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("quartet.chat.v1");

        /// The same service, with a Chat stream that may send messages encoded
        /// already ([`crate::codec::Outgoing`]): what the chat server runs,
        /// so a room encodes each line once rather than once per member.
        /// Generated from the descriptor, so its routes are the contract's.
        pub mod preencoded {
            include!(concat!(env!("OUT_DIR"), "/quartet.chat.v1.ChatService.rs"));
        }
    }
}

/// A generated server whose message size is bounded both ways, so every
/// service applies the server's one `--max-message-bytes` the same way.
pub trait MessageLimit: Sized {
    /// The server, refusing to decode or encode a message over `bytes`.
    #[must_use]
    fn limited_to(self, bytes: usize) -> Self;
}

/// Implements [`MessageLimit`] for each generated server named.
macro_rules! message_limit {
    ($($server:path),* $(,)?) => {$(
        impl<T> MessageLimit for $server {
            fn limited_to(self, bytes: usize) -> Self {
                self.max_decoding_message_size(bytes)
                    .max_encoding_message_size(bytes)
            }
        }
    )*};
}

message_limit!(
    transform::v1::transform_service_server::TransformServiceServer<T>,
    database::v1::people_service_server::PeopleServiceServer<T>,
    weather::v1::weather_service_server::WeatherServiceServer<T>,
    chat::v1::chat_service_server::ChatServiceServer<T>,
    chat::v1::preencoded::chat_service_server::ChatServiceServer<T>,
);

#[cfg(test)]
mod tests {
    use super::FILE_DESCRIPTOR_SET;
    use prost::Message;
    use prost_types::FileDescriptorSet;

    fn services() -> Vec<String> {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        set.file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service
                    .iter()
                    .map(move |service| format!("{package}.{}", service.name()))
            })
            .collect()
    }

    #[test]
    fn descriptor_set_holds_the_four_services() {
        let mut services = services();
        services.sort();
        assert_eq!(
            services,
            [
                "quartet.chat.v1.ChatService",
                "quartet.database.v1.PeopleService",
                "quartet.transform.v1.TransformService",
                "quartet.weather.v1.WeatherService",
            ]
        );
    }

    #[test]
    fn descriptor_set_includes_imports_and_comments() {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        let names: Vec<_> = set
            .file
            .iter()
            .map(prost_types::FileDescriptorProto::name)
            .collect();
        assert!(
            names.contains(&"google/protobuf/timestamp.proto"),
            "{names:?}"
        );
        let transform = set
            .file
            .iter()
            .find(|file| file.package() == "quartet.transform.v1")
            .unwrap();
        let comments = transform.source_code_info.as_ref().unwrap();
        assert!(
            comments
                .location
                .iter()
                .any(|location| location.leading_comments().contains("Unicode-correct")),
            "service comments must survive into the descriptor set"
        );
    }

    #[test]
    fn generated_names_match_the_contract() {
        use super::transform::v1::transform_service_server::SERVICE_NAME;
        assert_eq!(SERVICE_NAME, "quartet.transform.v1.TransformService");
    }
}
