"""Generated protobuf classes of include/proto/hms/** (tools/gen_python_protos.py).

Importing this package registers every HMS message type in protobuf's default
descriptor pool. Do not edit: regenerate instead.
"""

import hms_cffi.proto.hms.agent.lifecycle.v1.lifecycle_pb2  # noqa: F401
import hms_cffi.proto.hms.agent.v1.agent_pb2  # noqa: F401
import hms_cffi.proto.hms.audit.v1.audit_pb2  # noqa: F401
import hms_cffi.proto.hms.events.v1.events_pb2  # noqa: F401
import hms_cffi.proto.hms.registry.v1.registry_pb2  # noqa: F401
import hms_cffi.proto.hms.security.v1.security_pb2  # noqa: F401
import hms_cffi.proto.hms.sys.v1.system_pb2  # noqa: F401
import hms_cffi.proto.hms.v1.options_pb2  # noqa: F401
import hms_cffi.proto.hms.v1.service_pb2  # noqa: F401
import hms_cffi.proto.hms.v1.status_pb2  # noqa: F401
