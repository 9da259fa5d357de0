#!/usr/bin/env python3
"""Every Python benchmark case in one process: writes benchmarks/out/python.json.

The binding's paths (floor, bare calls, raw and typed Echo, the domain,
batches) and the comparators (a PyO3 extension, ctypes, grpcio, and the
Python codecs on the same Agent as the Rust codec benchmarks) are measured
the benchmarks/CASES.md way, in one run, so every ratio compares figures of
the same process under the same load:

- each case is calibrated (a loop of ``iterations`` calls lasting about
  0.1 s, a few ms with HMS_BENCH_QUICK=1) and warmed up by one round;
- then ``rounds`` rounds (15, or 3 quick) of every case, interleaved: round r
  of every case runs before round r+1 of any, so a change of load on a
  shared machine hits every case alike;
- a round is ``for _ in repeat(None, n): fn(arg)`` timed with perf_counter_ns,
  the garbage collector off (as timeit does); the figure is ns per call;
- each case checks its answer once, outside the timed loop.

Then the memory case: VmRSS before and after 1,000,000 raw Echo 64 B calls
(after 200,000 warm-up calls).

Usage (from the repository, after ``pip install -e ".[dev]"`` and
``benchmarks/rust/run.sh build`` for the PyO3 comparator; scripts/bench.sh
does all of it)::

    python benchmarks/python/run.py [--out PATH] [--only ID,ID] [--strict]
    # default out: $HMS_BENCH_OUT/python.json, else benchmarks/out/python.json
    python benchmarks/python/run.py --loop echo_raw_64 --seconds 10   # for perf/py-spy
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import functools
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import cbor2
import cffi
from google.protobuf import json_format
from google.protobuf.internal import api_implementation

import hms_cffi
from hms_cffi import Format, Runtime, State, ffi, lib
from hms_cffi._ffi import Buffers
from hms_cffi.proto.hms.agent.v1 import agent_pb2
from hms_cffi.proto.hms.sys.v1 import system_pb2
from hms_cffi.tokens import new_token, token_line

ROOT = Path(__file__).resolve().parents[2]
QUICK = os.environ.get("HMS_BENCH_QUICK") == "1"
ROUNDS = 3 if QUICK else 15
ROUND_NS = 5_000_000 if QUICK else 100_000_000
RSS_CALLS = 1_000_000
RSS_WARMUP = 200_000

ECHO = "hms.sys.v1.System/Echo"
AGENT_JSON = ROOT / "benchmarks" / "rust" / "codecs" / "agent.json"
PYO3_DIR = ROOT / "benchmarks" / "rust" / "target" / "pylib"
SIZES = {"64": 64, "1k": 1024, "64k": 64 * 1024}
BATCH = 1000


def payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def echo_request(size: int) -> bytes:
    return system_pb2.EchoRequest(payload=payload(size)).SerializeToString()


# ---------------------------------------------------------------- timing


def _loop0(fn: Callable[[], Any], n: int) -> int:
    it = repeat(None, n)
    t0 = time.perf_counter_ns()
    for _ in it:
        fn()
    return time.perf_counter_ns() - t0


def _loop1(fn: Callable[[Any], Any], arg: Any, n: int) -> int:
    it = repeat(None, n)
    t0 = time.perf_counter_ns()
    for _ in it:
        fn(arg)
    return time.perf_counter_ns() - t0


def _loopn(fn: Callable[..., Any], args: tuple[Any, ...], n: int) -> int:
    it = repeat(None, n)
    t0 = time.perf_counter_ns()
    for _ in it:
        fn(*args)
    return time.perf_counter_ns() - t0


def timed(fn: Callable[..., Any], args: tuple[Any, ...], n: int) -> int:
    """ns for ``n`` calls of ``fn(*args)``, the garbage collector off."""
    gc.collect()
    gc.disable()
    try:
        if not args:
            return _loop0(fn, n)
        if len(args) == 1:
            return _loop1(fn, args[0], n)
        return _loopn(fn, args, n)
    finally:
        gc.enable()


@dataclass
class Case:
    id: str
    label: str
    fn: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    baseline: str | None = None
    per_call: int = 1  # calls per fn() (a batch)
    # Called before every round, returning (fn, args) for it: a fresh state
    # per round (e.g. an empty runtime for CreateAgent).
    per_round: Callable[[], tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
    iterations: int = 0
    samples: list[float] = field(default_factory=list)

    def call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The function and arguments of the next round."""
        if self.per_round is not None:
            return self.per_round()
        assert self.fn is not None, self.id
        return self.fn, self.args

    def round(self) -> float:
        fn, args = self.call()
        return timed(fn, args, self.iterations) / self.iterations / self.per_call

    def calibrate(self) -> None:
        """Picks ``iterations`` so one round lasts about ROUND_NS, then runs
        the warm-up round."""
        fn, args = self.call()
        n = 1
        while True:
            t = timed(fn, args, n)
            if t >= ROUND_NS // 20 or n >= 1 << 30:
                break
            n *= 4 if t < ROUND_NS // 200 else 2
        # The fastest of three: one preemption on a busy machine must not
        # shrink the rounds.
        t = min(t, timed(fn, args, n), timed(fn, args, n))
        self.iterations = max(1, round(n * ROUND_NS / max(t, 1)))
        self.round()  # warm-up

    def result(self) -> dict[str, Any]:
        q1, median, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return {
            "id": self.id,
            "label": self.label,
            "median_ns": round(median, 2),
            "q1_ns": round(q1, 2),
            "q3_ns": round(q3, 2),
            "rounds": len(self.samples),
            "iterations": self.iterations,
            "baseline": self.baseline,
        }


def measure(cases: list[Case], who: str) -> None:
    """Calibrates every case, then runs their rounds interleaved (round r
    of every case before round r+1 of any), saying how far it got."""
    started = time.monotonic()
    for case in cases:
        case.calibrate()
    for r in range(ROUNDS):
        for case in cases:
            case.samples.append(case.round())
        elapsed = time.monotonic() - started
        print(f"{who}: round {r + 1}/{ROUNDS} ({elapsed:.0f} s)", file=sys.stderr)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------- comparators


class _Buf(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.POINTER(ctypes.c_uint8)),
        ("len", ctypes.c_size_t),
        ("cap", ctypes.c_size_t),
    ]


def ctypes_echo(handle: int, stack: ExitStack) -> Callable[[bytes], bytes]:
    """Raw Echo through ctypes: hms_method_call on library_path(), one
    reused hms_buf pair, the answer copied into bytes."""
    dll = ctypes.CDLL(str(hms_cffi.library_path()))
    call = dll.hms_method_call
    call.restype = ctypes.c_int32
    call.argtypes = [
        ctypes.c_uint64,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(_Buf),
        ctypes.POINTER(_Buf),
    ]
    free = dll.hms_buf_free
    free.argtypes = [ctypes.POINTER(_Buf)]
    out, err = _Buf(), _Buf()
    out_p, err_p = ctypes.byref(out), ctypes.byref(err)
    stack.callback(free, err_p)
    stack.callback(free, out_p)
    string_at = ctypes.string_at

    def echo(data: bytes) -> bytes:
        rc = call(handle, data, len(data), out_p, err_p)
        if rc:
            raise hms_cffi.HmsError.from_code(rc, "ctypes echo failed")
        return string_at(out.data, out.len)

    return echo


def load_pyo3() -> Any:
    """The hms_pyo3_bench module built by benchmarks/rust/run.sh build, or None."""
    if not any(PYO3_DIR.glob("hms_pyo3_bench*.so")):
        return None
    sys.path.insert(0, str(PYO3_DIR))
    import hms_pyo3_bench  # type: ignore[import-not-found]

    return hms_pyo3_bench


def agent_fixture() -> dict[str, Any]:
    """The benchmark Agent (the Rust codec benchmarks' agent.json) in every
    form the Python codecs take: the upb message, its protobuf bytes, and the
    core's CBOR and JSON of it, as bytes and as Python values."""
    msg = json_format.ParseDict(json.loads(AGENT_JSON.read_text()), agent_pb2.Agent())
    pb = msg.SerializeToString()
    name = "hms.agent.v1.Agent"
    cbor = hms_cffi.convert(name, pb, Format.PROTOBUF, Format.CBOR)
    js = hms_cffi.convert(name, pb, Format.PROTOBUF, Format.JSON)
    return {
        "msg": msg,
        "pb": pb,
        "cbor": cbor,
        "cbor_obj": cbor2.loads(cbor),
        "json": js,
        "json_obj": json.loads(js),
    }


def version_string(extra: dict[str, str]) -> str:
    def v(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    abi = ".".join(map(str, hms_cffi.abi_version()))
    parts = [
        f"CPython {platform.python_version()}",
        f"hms_cffi {hms_cffi.__version__} (library {hms_cffi.library_version()}, ABI {abi})",
        f"cffi {cffi.__version__}",
        f"protobuf {v('protobuf')} ({api_implementation.Type()})",
        f"cbor2 {v('cbor2')}",
    ]
    if "grpcio" in extra:
        parts.append(f"grpcio {extra['grpcio']}")
    if "pyo3" in extra:
        parts.append(f"pyo3 {locked_version('pyo3')} (benchmarks/rust/Cargo.lock)")
    return ", ".join(parts)


def locked_version(package: str) -> str:
    """The version of ``package`` in benchmarks/rust/Cargo.lock."""
    lock = (ROOT / "benchmarks" / "rust" / "Cargo.lock").read_text()
    needle = f'name = "{package}"\nversion = "'
    at = lock.find(needle)
    return lock[at + len(needle) :].split('"', 1)[0] if at >= 0 else "?"


# ---------------------------------------------------------------- the cases


class Suite:
    """The cases of one run, each checked once as it is added."""

    def __init__(self, rt: Runtime, stack: ExitStack, notes: list[str], strict: bool) -> None:
        self.rt, self.stack, self.notes, self.strict = rt, stack, notes, strict
        self.cases: list[Case] = []
        self.echo = rt.method(ECHO, Format.PROTOBUF)
        self.req = {k: echo_request(n) for k, n in SIZES.items()}
        self.versions: dict[str, str] = {}

    def add(self, case: Case, check: Callable[[Any], bool] | None = None) -> None:
        fn, args = case.call()
        answer = fn(*args)
        if check is not None and not check(answer):
            raise AssertionError(f"{case.id}: wrong answer {answer!r:.200}")
        self.cases.append(case)

    def skip(self, what: str) -> None:
        if self.strict:
            raise RuntimeError(what)
        print(f"run.py: {what}", file=sys.stderr)
        self.notes.append(what)

    def fresh_runtimes(
        self, config: Callable[[], dict[str, Any] | None]
    ) -> Callable[[], tuple[Callable[..., Any], tuple[Any, ...]]]:
        """A per-round factory of CreateAgent on a new runtime (the previous
        one closed), so that every round writes into a store of one size."""
        live: list[Runtime] = []
        self.stack.callback(lambda: [r.close() for r in live])

        def fresh() -> tuple[Callable[..., Any], tuple[Any, ...]]:
            while live:
                live.pop().close()
            live.append(Runtime(config()))
            create = live[0].agents.create
            return functools.partial(
                create, name="bench", capabilities=["x"], labels={"k": "v"}
            ), ()

        return fresh

    def binding(self) -> None:
        """The floor, the bare calls, raw and typed Echo, the batch."""
        rt, echo, req = self.rt, self.echo, self.req
        bufs = Buffers()
        self.stack.callback(bufs.release)

        def out_is(expected: bytes) -> Callable[[Any], bool]:
            return lambda rc: rc == 0 and bufs.read() == expected

        self.add(Case("floor", "bare hms_abi_version() through CFFI", lib.hms_abi_version))
        name, r64 = ECHO.encode(), req["64"]
        self.add(
            Case(
                "bare_call_64",
                "lib.hms_call Echo 64 B (ten arguments), no binding code",
                lib.hms_call,
                (rt.handle, name, len(name), 1, r64, len(r64), ffi.NULL, 0, bufs.out, bufs.err),
                baseline="floor",
            ),
            out_is(r64),
        )
        self.add(
            Case(
                "bare_method_call_64",
                "lib.hms_method_call Echo 64 B (five arguments), no binding code",
                lib.hms_method_call,
                (echo.handle, r64, len(r64), bufs.out, bufs.err),
                baseline="floor",
            ),
            out_is(r64),
        )
        for size, data in req.items():
            self.add(
                Case(
                    f"echo_raw_{size}",
                    f"Method.call_raw: Echo {size} B, protobuf bytes in and out",
                    echo.call_raw,
                    (data,),
                    baseline="floor",
                ),
                data.__eq__,
            )
        for size, n in SIZES.items():
            message = system_pb2.EchoRequest(payload=payload(n))
            self.add(
                Case(
                    f"echo_typed_{size}",
                    f"Method.__call__: EchoRequest {size} B in, EchoResponse out",
                    echo,
                    (message,),
                    baseline="floor",
                ),
                lambda out, message=message: out.payload == message.payload,
            )
        batch = [r64] * BATCH
        self.add(
            Case(
                "batch_echo_raw_64",
                f"Method.batch_raw: {BATCH:,} Echo 64 B in one hms_call_batch; per call",
                echo.batch_raw,
                (batch,),
                baseline="echo_raw_64",
                per_call=BATCH,
            ),
            lambda outs: len(outs) == BATCH and all(o == r64 for o in outs),
        )
        dict_req = {"payload": payload(64)}
        self.add(
            Case(
                "echo_dict_64",
                "rt.call(ECHO, dict): Echo 64 B, a dict in and out, CBOR on the wire",
                functools.partial(rt.call, ECHO),
                (dict_req,),
                baseline="floor",
            ),
            dict_req.__eq__,
        )

    def domain(self) -> None:
        """CreateAgent and Transition, typed; with SQLite; with a hook."""
        self.add(
            Case(
                "create_agent_typed",
                "rt.agents.create(name=, capabilities=, labels=): keywords in, Agent out",
                baseline="floor",
                per_round=self.fresh_runtimes(lambda: None),
            ),
            lambda agent: agent.state == State.INITIALIZED and agent.labels["k"] == "v",
        )
        self.add(
            Case(
                "transition_typed",
                "rt.lifecycle.transition(id, target): ACTIVE and PAUSED in turn",
                toggler(self.rt),
                baseline="floor",
            ),
            lambda reply: reply.event.sequence > 1,
        )
        # A blocking no-op Python hook on every transition of its own
        # runtime: a call from the core back into Python, on a library thread.
        hook_rt = self.stack.enter_context(Runtime())
        hook = hook_rt.lifecycle.hook(lambda invocation: None, blocking=True)
        self.stack.callback(hook.close)
        self.add(
            Case(
                "transition_hook_typed",
                "transition_typed with one blocking no-op Python hook",
                toggler(hook_rt),
                baseline="transition_typed",
            ),
            lambda reply: reply.event.sequence > 1,
        )
        # Every write a durable SQLite commit.
        tmp = self.stack.enter_context(tempfile.TemporaryDirectory(prefix="hms-bench-db-"))
        rounds = itertools.count()
        self.add(
            Case(
                "create_agent_sqlite_typed",
                "create_agent_typed with a data_dir (SQLite, committed before it returns)",
                baseline="create_agent_typed",
                per_round=self.fresh_runtimes(lambda: {"data_dir": f"{tmp}/r{next(rounds)}"}),
            ),
            lambda agent: agent.state == State.INITIALIZED,
        )

    def comparators(self) -> None:
        """PyO3 and ctypes on the same Echo."""
        r64 = self.req["64"]
        pyo3 = load_pyo3()
        if pyo3 is None:
            self.skip(f"pyo3 cases not run: no hms_pyo3_bench in {PYO3_DIR}")
        else:
            bridge = pyo3.Bridge()
            self.add(
                Case(
                    "pyo3_floor",
                    "PyO3: Bridge.abi_version(), the extension's cheapest call",
                    pyo3.Bridge.abi_version,
                    baseline="floor",
                ),
                lambda v: v == lib.hms_abi_version(),
            )
            self.add(
                Case(
                    "pyo3_echo_64",
                    "PyO3: Bridge.echo(bytes): Echo 64 B through runtime::call_method",
                    bridge.echo,
                    (r64,),
                ),
                r64.__eq__,
            )
            self.versions["pyo3"] = pyo3.__name__
        self.add(
            Case(
                "ctypes_echo_64",
                "ctypes: hms_method_call Echo 64 B, reused hms_buf, string_at copy",
                ctypes_echo(self.echo.handle, self.stack),
                (r64,),
                baseline="floor",
            ),
            r64.__eq__,
        )

    def codecs(self) -> None:
        """The Python codecs on the Rust codec benchmarks' Agent."""
        fx = agent_fixture()
        msg, cls = fx["msg"], agent_pb2.Agent

        def via_core(data: bytes) -> Any:
            return cls.FromString(
                hms_cffi.convert("hms.agent.v1.Agent", data, Format.CBOR, Format.PROTOBUF)
            )

        table: list[tuple[str, str, Callable[..., Any], tuple[Any, ...], Any]] = [
            ("upb_encode", "upb SerializeToString()", msg.SerializeToString, (),
             lambda b: cls.FromString(b) == msg),
            ("upb_decode", "upb Agent.FromString(bytes)", cls.FromString, (fx["pb"],), msg.__eq__),
            ("cbor2_encode", "cbor2.dumps(dict) of the core's CBOR form", cbor2.dumps,
             (fx["cbor_obj"],), lambda b: via_core(b) == msg),
            ("cbor2_decode", "cbor2.loads(the core's CBOR)", cbor2.loads, (fx["cbor"],),
             fx["cbor_obj"].__eq__),
            ("json_encode", "json.dumps(dict) of the core's JSON form, to str", json.dumps,
             (fx["json_obj"],), lambda s: json.loads(s) == fx["json_obj"]),
            ("json_decode", "json.loads(the core's JSON)", json.loads, (fx["json"],),
             fx["json_obj"].__eq__),
        ]  # fmt: skip
        for key, what, fn, args, check in table:
            lib_name, op = key.split("_")
            baseline = None if lib_name == "upb" else f"codec_upb_{op}_agent"
            self.add(
                Case(f"codec_{key}_agent", f"{what}: the ~1 KiB Agent", fn, args, baseline), check
            )

    def security(self) -> None:
        """Raw Echo 64 B on runtimes that authenticate every call: by an API
        token, by a JWT (EdDSA), each the runtime's default credentials."""
        tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="hms-bench-sec-")))
        token = new_token()
        tokens_file = tmp / "tokens"
        tokens_file.write_text(token_line("bench", ["reader"], token) + "\n")
        public_key, jwt = ed25519_jwt(tmp, {"sub": "bench", "roles": ["reader"]})

        def secured(scheme: str, secret: str, **more: Any) -> dict[str, Any]:
            """A config requiring authentication, ``more`` added to its
            security section."""
            return {
                "security": {
                    "require_authentication": True,
                    "api_tokens_file": str(tokens_file),
                    "jwt": {"public_key_files": [str(public_key)]},
                    "default_credentials": {"scheme": scheme, "token": secret},
                    **more,
                }
            }

        # id: (what, config)
        variants: dict[str, tuple[str, dict[str, Any]]] = {
            "api_token": ("an API token", secured("api-key", token)),
            "jwt": ("a JWT (EdDSA)", secured("bearer", jwt)),
        }
        # 20 policies, one permitting the reader's Echo: as written (a
        # method-level decision, cached) and reading the context (decided
        # on every call); the decision alone (audit log off), then with
        # every decision appended to an audit log file.
        policies = {"cached": "", "uncached": ' when { context.transport == "local" }'}
        for key, condition in policies.items():
            policy_file = tmp / f"{key}.cedar"
            policy_file.write_text(authz_policies(20, condition), encoding="utf-8")
            variants[f"authz_{key}"] = (
                f"an API token and a {key} authorization decision (20 policies)",
                secured(
                    "api-key",
                    token,
                    authorization={"policy_files": [str(policy_file)]},
                    audit={"enabled": False},
                ),
            )
        variants["authz_audited"] = (
            "an API token, a cached authorization decision and its audit record",
            {
                "data_dir": str(tmp / "audited"),
                **secured(
                    "api-key",
                    token,
                    authorization={"policy_files": [str(tmp / "cached.cedar")]},
                ),
            },
        )
        r64 = self.req["64"]
        for key, (what, config) in variants.items():
            rt = self.stack.enter_context(Runtime(config))
            self.add(
                Case(
                    f"echo_raw_64_{key}",
                    f"echo_raw_64 on a runtime requiring authentication, {what} per call",
                    rt.method(ECHO, Format.PROTOBUF).call_raw,
                    (r64,),
                    baseline="echo_raw_64",
                ),
                r64.__eq__,
            )

    def grpc(self) -> None:
        """grpcio unary Echo against a server process."""
        try:
            self.versions["grpcio"] = grpc_case(self.stack, self.cases)
        except Exception as e:
            self.skip(f"grpc_echo_64 not run: {e}")


def authz_policies(count: int, condition: str) -> str:
    """``count`` Cedar policies: one permitting the role "reader" to call
    Echo (with ``condition`` after it), the others permitting roles no
    caller has, each a whole service, so every policy is looked at."""
    echo = f'permit (principal in Hms::Role::"reader", action == Hms::Action::"{ECHO}", resource)'
    others = [
        f'permit (principal in Hms::Role::"team-{n}", '
        'action in Hms::Action::"hms.agent.v1.AgentService", resource);'
        for n in range(count - 1)
    ]
    return "\n".join([f"{echo}{condition};", *others]) + "\n"


def ed25519_jwt(folder: Path, claims: dict[str, Any]) -> tuple[Path, str]:
    """A fresh Ed25519 key pair in ``folder`` (by the openssl command, as the
    core's security tests make theirs) and a JWT of ``claims`` signed with
    it, valid for a day; returns the public key's PEM file and the JWT."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    private, public = folder / "jwt.key", folder / "jwt.pub"
    openssl = functools.partial(subprocess.run, check=True, capture_output=True)
    openssl(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)])
    openssl(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)])
    header = b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode())
    body = b64(json.dumps({**claims, "exp": int(time.time()) + 86_400}).encode())
    # Ed25519 signs the whole message at once: openssl takes it from a file.
    signing_input = folder / "jwt.input"
    signing_input.write_text(f"{header}.{body}")
    signature = openssl(
        ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(private), "-in", str(signing_input)]
    ).stdout
    return public, f"{header}.{body}.{b64(signature)}"


def toggler(rt: Runtime) -> Callable[[], Any]:
    """A new ACTIVE agent of ``rt`` and a function moving it to PAUSED,
    ACTIVE, PAUSED, ... (every move legal), returning the reply."""
    agent_id = rt.agents.create(name="bench-transition").id
    rt.lifecycle.transition(agent_id, State.ACTIVE)
    targets = itertools.cycle([State.PAUSED, State.ACTIVE])
    transition = rt.lifecycle.transition

    def toggle() -> Any:
        return transition(agent_id, next(targets))

    return toggle


def grpc_case(stack: ExitStack, cases: list[Case]) -> str:
    """Starts the gRPC Echo server and adds grpc_echo_64; returns grpcio's version."""
    import grpc
    import grpc_echo

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hms-bench-grpc-")))
    stub_file = grpc_echo.generate_stubs(tmp)
    stubs = grpc_echo.load_stubs(stub_file)
    server = stack.enter_context(grpc_echo.Server(stub_file))
    channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    stub = stubs.SystemStub(channel)
    request = system_pb2.EchoRequest(payload=payload(64))
    if stub.Echo(request).payload != request.payload:
        raise AssertionError("grpc_echo_64: wrong answer")
    cases.append(
        Case(
            "grpc_echo_64",
            "grpcio unary Echo 64 B on 127.0.0.1 (server process calls the core)",
            stub.Echo,
            (request,),
            baseline="echo_raw_64",
        )
    )
    return str(grpc.__version__)


def rss_case(rt: Runtime) -> dict[str, Any]:
    call_raw = rt.method(ECHO, Format.PROTOBUF).call_raw
    data = echo_request(64)
    timed(call_raw, (data,), RSS_WARMUP)
    gc.collect()
    before = rss_kib()
    timed(call_raw, (data,), RSS_CALLS)
    gc.collect()
    after = rss_kib()
    return {
        "id": "rss_1m_echo",
        "label": f"{RSS_CALLS:,} raw Echo 64 B calls (Method.call_raw)",
        "calls": RSS_CALLS,
        "rss_before_kib": before,
        "rss_after_kib": after,
    }


# ---------------------------------------------------------------- main


def build(rt: Runtime, stack: ExitStack, notes: list[str], strict: bool) -> Suite:
    suite = Suite(rt, stack, notes, strict)
    suite.binding()
    suite.domain()
    suite.comparators()
    suite.codecs()
    suite.security()
    suite.grpc()
    return suite


def run(out: Path, only: set[str] | None, strict: bool) -> int:
    notes = [
        f"{ROUNDS} rounds of about {ROUND_NS / 1e6:g} ms per case after one warm-up round; "
        "rounds of all cases interleaved; garbage collector off inside a round; "
        "every figure includes the loop's own cost (about 10 ns per call).",
        "bare_method_call_64 is lib.hms_method_call with no binding code: what "
        "Method.call_raw costs beyond it is the binding's share.",
        "PyO3 calls hold the GIL; CFFI releases and retakes it around every call.",
    ]
    with ExitStack() as stack:
        rt = stack.enter_context(Runtime())
        suite = build(rt, stack, notes, strict)
        cases = [c for c in suite.cases if only is None or c.id in only]
        measure(cases, "run.py")
        memory = [rss_case(rt)] if only is None or "rss_1m_echo" in only else []
        result = {
            "language": "Python",
            "version": version_string(suite.versions),
            "notes": notes,
            "cases": [c.result() for c in cases],
            "memory": memory,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(c["id"]) for c in result["cases"])
    for c in result["cases"]:
        figures = f"{c['median_ns']:>12,.1f} ns  [{c['q1_ns']:,.1f} - {c['q3_ns']:,.1f}]"
        print(f"{c['id']:<{width}}  {figures}")
    for m in memory:
        print(f"{m['id']}: VmRSS {m['rss_before_kib']:,} -> {m['rss_after_kib']:,} KiB")
    print(f"wrote {out}")
    return 0


def loop(case_id: str, seconds: float) -> int:
    """Runs one case in a tight loop, for a profiler (perf, py-spy)."""
    with ExitStack() as stack:
        rt = stack.enter_context(Runtime())
        cases = {c.id: c for c in build(rt, stack, [], strict=False).cases}
        fn, args = cases[case_id].call()
        deadline = time.monotonic() + seconds
        calls = 0
        gc.collect()
        gc.disable()  # as inside a round; no collection in the profile
        while time.monotonic() < deadline:
            _loopn(fn, args, 100_000)
            calls += 100_000
        gc.enable()
        print(f"{case_id}: {calls:,} calls in {seconds:g} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    out_dir = Path(os.environ.get("HMS_BENCH_OUT") or ROOT / "benchmarks" / "out")
    parser.add_argument("--out", type=Path, default=out_dir / "python.json")
    parser.add_argument("--only", help="comma-separated case ids (default: all)")
    parser.add_argument(
        "--strict", action="store_true", help="a comparator that cannot run is an error"
    )
    parser.add_argument("--loop", metavar="ID", help="run one case in a loop (for a profiler)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.loop:
        return loop(args.loop, args.seconds)
    only = set(args.only.split(",")) if args.only else None
    return run(args.out, only, args.strict)


if __name__ == "__main__":
    sys.exit(main())
