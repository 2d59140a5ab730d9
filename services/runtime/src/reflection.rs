//! Server reflection, `grpc.reflection.v1` and `v1alpha` (older grpcurl and
//! grpc-go tools still ask the latter), advertising exactly the services a server
//! hosts rather than every service in the descriptor sets.

use tonic_reflection::{
    pb::{v1, v1alpha},
    server::{
        Builder, Error, v1::ServerReflectionServer,
        v1alpha::ServerReflectionServer as V1AlphaServer,
    },
};

use crate::health::HEALTH_SERVICE_NAME;

/// The v1 and v1alpha reflection services for `services`, described by
/// `descriptor_sets` (the health and reflection descriptors are added here).
pub(crate) fn services(
    descriptor_sets: &[&'static [u8]],
    services: &[&'static str],
) -> Result<
    (
        ServerReflectionServer<impl v1::server_reflection_server::ServerReflection>,
        V1AlphaServer<impl v1alpha::server_reflection_server::ServerReflection>,
    ),
    Error,
> {
    let builder = |reflection_name: &str| {
        let mut builder = Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE_NAME)
            .with_service_name(reflection_name);
        for set in descriptor_sets {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    let v1 = builder(v1::server_reflection_server::SERVICE_NAME).build_v1()?;
    let v1alpha = builder(v1alpha::server_reflection_server::SERVICE_NAME).build_v1alpha()?;
    Ok((v1, v1alpha))
}
