"""A panic inside the core comes back as PanicError, and the buffers survive it.

The fault-injection copy of the core (tests/faults/build_fault_library.sh,
Cargo feature ``fault-injection``) has the built-in untyped service
hms.test.v1.Faults: ``Panic`` panics before answering, ``PanicWhileAnswering``
grows the caller's response buffer by 1 MiB and then panics. CI passes its
path in HMS_FFI_FAULT_LIBRARY.

hms_cffi._native and hms_cffi._fast find their library through a DT_RPATH
of $ORIGIN, which LD_LIBRARY_PATH does not override; a copy of the package
whose library is the fault copy (helpers.package_with_library), first on
PYTHONPATH, makes a fresh interpreter load it instead of the bundled one.
That interpreter runs this file as a script (:func:`survive_panics`), with
the compiled fast path and then without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import package_with_library

import hms_cffi.methods
from hms_cffi import Format, Method, NotFoundError, PanicError, Runtime, StatusCode
from hms_cffi.proto.hms.sys.v1 import system_pb2

FAULTS = "hms.test.v1.Faults"
PANIC = f"{FAULTS}/Panic"
PANIC_WHILE_ANSWERING = f"{FAULTS}/PanicWhileAnswering"
ECHO = "hms.sys.v1.System/Echo"
ROUNDS = 3
#: Big enough that the echo answer needs more than a freshly made buffer.
ECHO_PAYLOAD_BYTES = 96 * 1024


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


def fault_library() -> Path:
    """HMS_FFI_FAULT_LIBRARY; skips without it, except in CI, where a
    missing library must never let the test pass unnoticed."""
    path = os.environ.get("HMS_FFI_FAULT_LIBRARY", "")
    if not path:
        reason = (
            "HMS_FFI_FAULT_LIBRARY is not set: build the fault-injection core with "
            'HMS_FFI_FAULT_LIBRARY="$(bash tests/faults/build_fault_library.sh | tail -n1)"'
        )
        if in_ci():
            pytest.fail(f"{reason} (CI=true: this test must run)")
        pytest.skip(reason)
    library = Path(path).resolve()
    assert library.is_file(), f"HMS_FFI_FAULT_LIBRARY={path} names no file"
    return library


def test_a_panic_inside_the_core_then_call_again_with_the_same_buffers(
    tmp_path: Path,
) -> None:
    library = fault_library()
    env = os.environ | {
        "PYTHONPATH": str(package_with_library(tmp_path, library)),
        "HMS_FFI_FAULT_LIBRARY": str(library),
        # The core's panic message on stderr is expected noise; keep it short.
        "RUST_BACKTRACE": "0",
    }
    proc = subprocess.run(
        [sys.executable, __file__],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert f"survived {2 * ROUNDS * 4} panics" in proc.stdout.splitlines(), proc.stdout


def test_the_release_library_has_no_faults_service(rt: Runtime) -> None:
    # The normal suite's library is a release build: the service that
    # panics on purpose must never be in it.
    with pytest.raises(NotFoundError) as info:
        rt.call(PANIC, {})
    assert info.value.code == StatusCode.NOT_FOUND
    with pytest.raises(NotFoundError):
        rt.method(PANIC_WHILE_ANSWERING, Format.CBOR)


# -- run in the interpreter that loaded the fault-injection library ----------


def loaded_libraries() -> set[Path]:
    """The libhms_ffi files mapped into this process."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return {
            Path(line.split(maxsplit=5)[5].strip()).resolve()
            for line in maps
            if "libhms_ffi" in line and len(line.split(maxsplit=5)) == 6
        }


def expect_panic(label: str, call: Callable[[], Any]) -> None:
    try:
        answer = call()
    except PanicError as error:
        assert error.code == StatusCode.PANIC, f"{label}: {error!r}"
        assert int(error.code) == 104, f"{label}: {error!r}"
        assert "fault injected" in error.message, f"{label}: {error!r}"
        return
    raise AssertionError(f"{label} answered {answer!r} instead of raising PanicError")


def survive_panics() -> None:
    library = Path(os.environ["HMS_FFI_FAULT_LIBRARY"])
    assert loaded_libraries() == {library}, (
        f"loaded {loaded_libraries()}, not {library}: PYTHONPATH did not take effect"
    )
    panics = 0
    with Runtime() as rt:

        def echo_by_name(request: system_pb2.EchoRequest) -> Any:
            # With options a call always goes by name (hms_call), never
            # through the method handle call_raw caches after an answer.
            return rt.call(ECHO, request, expect=system_pb2.EchoResponse, timeout=60.0)

        # Calls by name go through the per-thread buffer pair; method handles
        # through hms_cffi._fast's buffers, or through CFFI and that pair
        # when made without the fast path. Each panic is followed by an echo
        # the same way.
        for fast in (True, False):
            hms_cffi.methods.FAST = fast  # a Method picks its call path when made
            by_handle: dict[str, Method[Any]] = {
                name: rt.method(name, Format.CBOR) for name in (PANIC, PANIC_WHILE_ANSWERING)
            }
            echo_by_handle = rt.method(ECHO, expect=system_pb2.EchoResponse)
            handle_path = "fast" if fast else "CFFI"
            for round_ in range(ROUNDS):
                for name in (PANIC, PANIC_WHILE_ANSWERING):
                    paths: list[tuple[str, Callable[[], Any], Callable[..., Any]]] = [
                        (f"{name} by name", partial(rt.call, name, {}), echo_by_name),
                        (
                            f"{name} by handle ({handle_path})",
                            partial(by_handle[name], {}),
                            echo_by_handle,
                        ),
                    ]
                    for label, panic, echo in paths:
                        expect_panic(f"{label}, round {round_}", panic)
                        panics += 1
                        text = f"after {label}, round {round_}"
                        payload = bytes([panics]) * ECHO_PAYLOAD_BYTES
                        reply = echo(system_pb2.EchoRequest(text=text, payload=payload))
                        assert reply.text == text, f"{text}: echoed {reply.text!r}"
                        assert reply.payload == payload, f"{text}: the payload came back changed"
            for method in [*by_handle.values(), echo_by_handle]:
                method.close()
    print(f"survived {panics} panics")


if __name__ == "__main__":
    survive_panics()
