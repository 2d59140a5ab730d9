"""A gRPC client that knows nothing about Quartet but the server's address.

It uses a different gRPC implementation than Quartet (grpcio, the C core), the way
Kubernetes' probes (grpc-go) and grpcurl do:

1. asks grpc.health.v1.Health/Check for the whole server, as a Kubernetes gRPC
   probe does;
2. lists services over server reflection and fetches their descriptors;
3. builds requests from those descriptors alone and calls Transform and
   TransformStream.

Prints one JSON object with what it saw; tests/tests/interop.rs asserts on it.
Usage: reflection_client.py HOST:PORT
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "quartet.transform.v1.TransformService"
DEADLINE_SECONDS = 10


def main(address):
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=DEADLINE_SECONDS)

    health = health_pb2_grpc.HealthStub(channel)
    overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_SECONDS)
    per_service = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=DEADLINE_SECONDS)

    database = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(database.get_services())
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(SERVICE)
    transform = service.methods_by_name["Transform"]
    request_class = message_factory.GetMessageClass(transform.input_type)
    response_class = message_factory.GetMessageClass(transform.output_type)
    operations = transform.input_type.fields_by_name["operation"].enum_type.values_by_name

    def request(operation, text):
        return request_class(operation=operations[operation].number, text=text)

    unary = channel.unary_unary(
        f"/{SERVICE}/Transform",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    upper = unary(request("OPERATION_UPPER", "straße"), timeout=DEADLINE_SECONDS).text

    try:
        unary(request("OPERATION_UNSPECIFIED", "x"), timeout=DEADLINE_SECONDS)
        unspecified = "OK"
    except grpc.RpcError as error:
        unspecified = error.code().name

    streaming = channel.stream_stream(
        f"/{SERVICE}/TransformStream",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    words = [f"palabra-{i}" for i in range(100)]
    reversed_words = [
        answer.text
        for answer in streaming(
            iter([request("OPERATION_REVERSE", word) for word in words]),
            timeout=DEADLINE_SECONDS,
        )
    ]

    print(
        json.dumps(
            {
                "health": health_pb2.HealthCheckResponse.ServingStatus.Name(overall.status),
                "service_health": health_pb2.HealthCheckResponse.ServingStatus.Name(per_service.status),
                "services": services,
                "upper": upper,
                "unspecified": unspecified,
                "stream_in_order": reversed_words == [word[::-1] for word in words],
                "documented": any(
                    "Unicode-correct" in location.leading_comments
                    for location in database.FindFileContainingSymbol(SERVICE).source_code_info.location
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
