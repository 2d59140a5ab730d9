//! `ServedMethods`: the methods a server hosts, read once at start from the
//! descriptor sets of its services (health and reflection included).
//!
//! Clients choose request paths, so nothing a server keeps per path may grow
//! with them: per-method state (a method's metric series, whether it takes
//! exactly one request message) lives here, one entry per method the server
//! serves, and every other path is treated as one unknown method. The table
//! never changes after start, so calls read it without a lock.

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
};

use prost::Message as _;
use prost_types::FileDescriptorSet;
use tonic_reflection::pb::{v1, v1alpha};

use crate::{
    error::DescriptorError,
    health::HEALTH_SERVICE_NAME,
    metrics::{CallMetrics, MethodMetrics},
};

/// One method a server serves.
#[derive(Debug)]
pub(crate) struct ServedMethod {
    /// Unary and server-streaming calls carry exactly one request message, so a
    /// request that ends without one is the client's error.
    single_request: bool,
    /// The method's call metrics, resolved on its first call (so the scrape
    /// shows only methods that were called).
    metrics: OnceLock<Arc<MethodMetrics>>,
}

impl ServedMethod {
    /// Whether the request carries exactly one message.
    pub(crate) fn single_request(&self) -> bool {
        self.single_request
    }

    /// The series of this method, `path`, in `calls`. A server's table is only
    /// ever read with its own registry's call metrics.
    pub(crate) fn metrics(&self, calls: &CallMetrics, path: &str) -> Arc<MethodMetrics> {
        self.metrics.get_or_init(|| calls.resolve(path)).clone()
    }
}

/// Every method one server serves, by request path (`/package.Service/Method`).
///
/// Looked up twice per call with foldhash rather than SipHash: the table is
/// fixed at start and clients only look paths up, never insert them, so there
/// is no table for colliding keys to grow, and a lookup hashes a 40-byte path
/// several times faster.
#[derive(Debug, Default)]
pub(crate) struct ServedMethods {
    by_path: foldhash::HashMap<Box<str>, ServedMethod>,
}

impl ServedMethods {
    /// The methods of `services`, as `descriptor_sets` describe them, plus
    /// those of the health and reflection services every server hosts.
    pub(crate) fn of_server(
        descriptor_sets: &[&[u8]],
        services: &[&str],
    ) -> Result<Self, DescriptorError> {
        let mut sets = vec![
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            v1::FILE_DESCRIPTOR_SET,
            v1alpha::FILE_DESCRIPTOR_SET,
        ];
        sets.extend_from_slice(descriptor_sets);
        let mut hosted: HashSet<&str> = services.iter().copied().collect();
        hosted.extend([
            HEALTH_SERVICE_NAME,
            v1::server_reflection_server::SERVICE_NAME,
            v1alpha::server_reflection_server::SERVICE_NAME,
        ]);
        Self::described(&sets, &hosted)
    }

    fn described(sets: &[&[u8]], hosted: &HashSet<&str>) -> Result<Self, DescriptorError> {
        let mut served = Self::default();
        let mut found = HashSet::new();
        for set in sets {
            for file in FileDescriptorSet::decode(*set)?.file {
                let package = file.package();
                for service in &file.service {
                    let name = if package.is_empty() {
                        service.name().to_owned()
                    } else {
                        format!("{package}.{}", service.name())
                    };
                    let Some(hosted) = hosted.get(name.as_str()) else {
                        continue;
                    };
                    found.insert(*hosted);
                    for method in &service.method {
                        served.by_path.insert(
                            format!("/{name}/{}", method.name()).into(),
                            ServedMethod {
                                single_request: !method.client_streaming(),
                                metrics: OnceLock::new(),
                            },
                        );
                    }
                }
            }
        }
        if let Some(missing) = hosted.iter().find(|name| !found.contains(*name)) {
            return Err(DescriptorError::Undescribed((*missing).to_owned()));
        }
        Ok(served)
    }

    /// The method at `path`, or `None` for a path this server does not serve.
    pub(crate) fn get(&self, path: &str) -> Option<&ServedMethod> {
        self.by_path.get(path)
    }
}

#[cfg(test)]
mod tests {
    use super::{DescriptorError, ServedMethods};

    const TRANSFORM: &str = "quartet.transform.v1.TransformService";

    fn transform_server() -> ServedMethods {
        ServedMethods::of_server(&[quartet_proto::FILE_DESCRIPTOR_SET], &[TRANSFORM]).unwrap()
    }

    /// Those of `paths` that a transform server serves.
    fn served_among<'a>(paths: &[&'a str]) -> Vec<&'a str> {
        let served = transform_server();
        paths
            .iter()
            .copied()
            .filter(|path| served.get(path).is_some())
            .collect()
    }

    #[test]
    fn hosted_services_health_and_reflection_are_served() {
        let paths = [
            "/quartet.transform.v1.TransformService/Transform",
            "/quartet.transform.v1.TransformService/TransformStream",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ];
        assert_eq!(served_among(&paths), paths);
    }

    #[test]
    fn other_services_of_the_same_descriptors_are_not_served() {
        let served = served_among(&[
            "/quartet.database.v1.PeopleService/GetPerson",
            "/quartet.transform.v1.TransformService/Nope",
            "/quartet.transform.v1.TransformService",
            "",
        ]);
        assert!(served.is_empty(), "{served:?}");
    }

    #[test]
    fn only_calls_without_a_client_stream_take_a_single_request() {
        let served = transform_server();
        let single = |path: &str| served.get(path).unwrap().single_request();
        assert!(single("/quartet.transform.v1.TransformService/Transform"));
        assert!(!single(
            "/quartet.transform.v1.TransformService/TransformStream"
        ));
        // Server streaming: one request, many answers.
        assert!(single("/grpc.health.v1.Health/Watch"));
    }

    #[test]
    fn a_hosted_service_without_descriptors_is_an_error() {
        let error = ServedMethods::of_server(&[], &[TRANSFORM]).unwrap_err();
        assert!(
            matches!(&error, DescriptorError::Undescribed(name) if name == TRANSFORM),
            "{error}"
        );
    }
}
