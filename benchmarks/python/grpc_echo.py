"""Echo as a grpcio unary call on loopback, for ``grpc_echo_64`` in run.py.

The stubs for ``hms.sys.v1.System`` are generated at run time with
grpc_tools.protoc into a temporary directory (only the ``_grpc`` module: the
messages are hms_cffi's own ``system_pb2``). The server runs in a separate
process (``python grpc_echo.py STUB_DIR``) and implements Echo by calling the
core through hms_cffi (a resolved method, typed); it prints its port on
stdout and stops when its stdin closes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ECHO = "hms.sys.v1.System/Echo"
_PROTO = "hms/sys/v1/system.proto"
_GENERATED = "hms/sys/v1/system_pb2_grpc.py"


def generate_stubs(dest: Path) -> Path:
    """Writes the ``System`` service stubs under ``dest``; returns the file."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT / 'include' / 'proto'}",
            f"-I{well_known}",
            f"--grpc_python_out={dest}",
            _PROTO,
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit {rc} on {_PROTO}")
    path = dest / _GENERATED
    # The messages are hms_cffi's, already in the descriptor pool.
    text = path.read_text()
    text = text.replace("from hms.sys.v1 import", "from hms_cffi.proto.hms.sys.v1 import")
    path.write_text(text)
    return path


def load_stubs(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("hms_bench_system_pb2_grpc", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """The server process, from the client's side (a context manager)."""

    def __init__(self, stub_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(stub_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the gRPC Echo server did not start (said {line!r})")
        self.port = int(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(stub_file: Path) -> None:
    import grpc

    from hms_cffi import Format, Runtime

    stubs = load_stubs(stub_file)
    with Runtime() as rt:
        echo = rt.method(ECHO, Format.PROTOBUF)

        class System(stubs.SystemServicer):  # type: ignore[name-defined,misc]
            def Echo(self, request: Any, context: Any) -> Any:
                return echo(request)

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        stubs.add_SystemServicer_to_server(System(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print(port, flush=True)
        sys.stdin.read()  # until the client closes our stdin
        server.stop(grace=None)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
