"""A client that only speaks gRPC server reflection v1alpha (grpcio-reflection's descriptor
database): it discovers the services, builds GetConfig's messages from the descriptors the
server sent, calls it, and prints one JSON line with what it found.

Usage: reflection_client.py HOST:PORT CONFIG_ID
"""

import json
import sys

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> None:
    target, config_id = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("summit.config.v1.ConfigService")
        method = service.methods_by_name["GetConfig"]
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        answer = call(request_type(config_id=config_id), timeout=10)
        print(
            json.dumps(
                {
                    "services": services,
                    "configId": answer.config_id,
                    "version": answer.version,
                    "checksum": answer.checksum,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
