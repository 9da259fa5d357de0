"""``hms``: the HMS core from the command line (stdlib argparse only).

::

    hms version                                  library version and ABI
    hms services [--prefix P]                    registered services
    hms describe SERVICE                         one service's methods and types
    hms call METHOD [JSON | -] [--nats URL]      JSON in, JSON out (like grpcurl)
    hms convert TYPE --from F --to F [--hex]     stdin to stdout, F: json|cbor|protobuf
    hms events [--kinds K ...] [--count N] [--timeout S] [--run-demo]
    hms demo                                     python -m hms_cffi.demo
    hms serve --nats URL --export SERVICE ...    serve services to other processes
    hms token hash PRINCIPAL [--new]             a line of an API token file
    hms audit verify LOG [--hmac-key-file F]     check an audit log's chain
    hms audit tail [-f] LOG                      print (and follow) audit records

``--nats URL`` (repeatable) connects the command's runtime to NATS servers
(docs/transport.md): ``hms call --nats`` then calls the method in whichever
process serves it, even a built-in one, and ``hms services --nats`` lists
what other processes serve. ``hms serve`` runs a runtime exporting the
services named by ``--export`` (built-in ones such as the agents of its
``--data-dir``, or any ``hms.v1.RuntimeConfig`` given as JSON by
``--config``) until SIGINT or SIGTERM, then stops taking calls, lets the
calls in flight finish, prints that it stopped and exits with 0.

Every command runs on a fresh runtime of its own, in memory unless
``--data-dir`` names a folder (then agents, tasks, knowledge and lifecycle
history persist from one command to the next; one process at a time may
hold a folder). Events are not stored: ``hms events`` sees only what
happens in its own process, which is why ``--run-demo`` exists.

A failed call prints its ``hms.v1.Status`` as JSON on stderr (with the code's
name under ``"status"``) and exits with 1. A value the command itself cannot
use (a request that is not JSON or not UTF-8, bad hex, a negative or
non-finite ``--timeout``, a negative ``--count``, an unknown format or state
name) is reported the same way, as INVALID_ARGUMENT with ``"origin": "hms"``,
and an unreadable stdin as FAILED_PRECONDITION, as the core reports a
``--data-dir`` it cannot use; requests the command passes on as they are (too
large, nested too deep, a method name with control characters) get the core's
own status. Usage errors (an unknown command or option, a missing argument)
exit with 2, and no input ever ends in a traceback. (One input never reaches
hms: a stdin that is a directory, which the Python interpreter itself refuses
at start-up.)

``hms audit verify`` exits with 0 when the log is intact, printing how many
records it holds and its last sequence number and hash, and with 3 when it
is not, naming on stderr the first broken record (sequence number, line)
and how it broke: edited, removed, reordered or truncated (docs/security.md,
"Audit log"). Both audit commands run the core's hms.audit.v1.Audit service,
so there is one implementation of the chain.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import errno
import io
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO, TypeVar

import hms_cffi
from hms_cffi.domain.enums import State, TransitionType
from hms_cffi.errors import (
    FailedPreconditionError,
    HmsError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    StatusCode,
)
from hms_cffi.formats import Format
from hms_cffi.runtime import Runtime

__all__ = ["main"]

_FORMATS = {
    "json": Format.JSON,
    "cbor": Format.CBOR,
    "protobuf": Format.PROTOBUF,
    "pb": Format.PROTOBUF,
}


#: The enums whose members the options of ``hms events`` name.
_Member = TypeVar("_Member", State, TransitionType)

#: The origin of the statuses the command raises itself, before any call.
_ORIGIN = "hms"


def _invalid(message: str, **details: str) -> InvalidArgumentError:
    """A value from the command line or stdin that the command cannot use,
    reported as the core reports a bad argument."""
    return InvalidArgumentError(message, details=details, origin=_ORIGIN)


def _utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8. Arguments that are not UTF-8 reach Python as lone
    surrogates (surrogateescape); they are refused here, naming the byte,
    rather than failing later inside an encoder."""
    try:
        return text.encode()
    except UnicodeEncodeError as bad:
        raw = text.encode("utf-8", "surrogateescape")
        offset = len(text[: bad.start].encode("utf-8", "surrogateescape"))
        raise _invalid(
            f"{what} is not UTF-8: byte 0x{raw[offset]:02x} at offset {offset}",
            offset=str(offset),
        ) from None


def _format(name: str, option: str) -> Format:
    try:
        return _FORMATS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(_FORMATS))
        raise _invalid(
            f"{option}: unknown format {name!r}: give one of {known}", format=name
        ) from None


#: The longest ``hms call --timeout``: hms.v1.CallOptions.deadline_ms is a
#: uint32 of milliseconds (about 49.7 days).
_MAX_DEADLINE_S = (2**32 - 1) / 1000


def _seconds(text: str | None, option: str, most: float = math.inf) -> float | None:
    """A duration in seconds: a finite number from 0 to ``most``."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"{option}: {text!r} is not a number of seconds", value=text) from None
    if not math.isfinite(value) or not 0 <= value <= most:
        limit = f"0 to {most}" if math.isfinite(most) else "0 or more"
        raise _invalid(f"{option}: {text} is out of range: give {limit} seconds", value=text)
    return value


def _count(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _invalid(f"{option}: {text!r} is not a whole number", value=text) from None
    if value < 0:
        raise _invalid(f"{option}: {value} is negative: give 0 or more", value=text)
    return value


def _read_stdin() -> bytes:
    """All of stdin, as bytes (a text read would fail on bytes that are not
    UTF-8 with a decoder's error instead of ours)."""
    try:
        return sys.stdin.buffer.read()
    except OSError as failed:
        raise _file_error(failed, "stdin") from None


def _file_error(failed: OSError, what: str, action: str = "read") -> HmsError:
    """An OSError as the core reports a file it cannot use (its data_dir):
    FAILED_PRECONDITION, the system's reason in the message."""
    reason = failed.strerror or str(failed)
    code = errno.errorcode.get(failed.errno or 0, str(failed.errno))
    return FailedPreconditionError(
        f"cannot {action} {what}: {reason}", details={"file": what, "errno": code}, origin=_ORIGIN
    )


def _runtime(args: argparse.Namespace, remote: Sequence[str] = ()) -> Runtime:
    """The command's runtime; with ``--nats``, connected, reaching the
    built-in services named in ``remote`` through NATS rather than here."""
    config: dict[str, Any] = {"name": "hms-cli"}
    if args.data_dir:
        _utf8(args.data_dir, "--data-dir")
        config["data_dir"] = args.data_dir
    servers = getattr(args, "nats", None)
    if servers:
        for url in servers:
            _utf8(url, "--nats")
        config["nats"] = {"servers": servers, "remote_services": list(remote)}
    return Runtime(config)


def _service_of(method: str) -> str:
    """The service part of ``package.Service/Method`` ("" for a name
    without one; the core reports that name as it is)."""
    service, slash, _ = method.rpartition("/")
    return service if slash and _is_service_name(service) else ""


def _is_service_name(name: str) -> bool:
    """A dotted identifier, as the core checks ``nats.remote_services``."""
    return all(part.isidentifier() and part.isascii() for part in name.split("."))


def _dump(value: Any, out: TextIO, compact: bool) -> None:
    if compact:
        out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _read_json_arg(text: str | None) -> bytes:
    """The request of ``hms call``: the argument, or stdin for ``-``, as
    UTF-8 JSON bytes ({} when empty).

    Syntax is checked here, for an error that points at the mistake; limits
    are the core's to enforce (size, nesting depth), so a request Python
    cannot parse for its own recursion limit goes to the core as it is, and
    comes back with the core's status.
    """
    if text is None:
        return b"{}"
    if text == "-":
        raw = _read_stdin()
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            raise _invalid(
                f"the request on stdin is not UTF-8: byte 0x{raw[bad.start]:02x} "
                f"at offset {bad.start}",
                offset=str(bad.start),
            ) from None
        data = raw.strip() or b"{}"
    else:
        data = _utf8(text, "the request").strip() or b"{}"
    try:
        json.loads(data)
    except json.JSONDecodeError as bad:
        raise _invalid(f"not JSON: {bad}", line=str(bad.lineno), column=str(bad.colno)) from None
    except RecursionError:
        pass  # deeper than Python parses; the core refuses it past its own limit
    return data


# -- commands ---------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> int:
    major, minor = hms_cffi.abi_version()
    _dump(
        {
            "library_version": hms_cffi.library_version(),
            "abi": f"{major}.{minor}",
            "binding_version": hms_cffi.__version__,
            "binding_abi": f"{hms_cffi.ABI_MAJOR}.{hms_cffi.ABI_MINOR}",
            "library_path": str(hms_cffi.library_path()),
        },
        sys.stdout,
        args.compact,
    )
    return 0


_REGISTRY = "hms.registry.v1.Registry"
_LIST_SERVICES = f"{_REGISTRY}/ListServices"


def _list_services(rt: Runtime, prefix: str) -> list[dict[str, Any]]:
    reply = rt.call(
        _LIST_SERVICES, json.dumps({"name_prefix": prefix}).encode(), format=Format.JSON
    )
    services: list[dict[str, Any]] = json.loads(reply).get("services", [])
    return services


def cmd_services(args: argparse.Namespace) -> int:
    _utf8(args.prefix, "--prefix")
    if args.nats:
        services = _remote_services(args)
    else:
        with _runtime(args) as rt:
            services = _list_services(rt, args.prefix)
    if args.json:
        _dump(services, sys.stdout, args.compact)
        return 0
    for service in services:
        methods = ", ".join(m["name"] for m in service.get("methods", []))
        version = f" {service['version']}" if service.get("version") else ""
        served_by = service.get("served_by")
        where = f" (served by {', '.join(served_by)})" if served_by else ""
        print(f"{service['name']}{version}{where}: {methods}")
    return 0


def _remote_services(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The services other runtimes serve on ``--nats``, built-in ones too.

    A runtime lists remote services only where it has none of that name, so
    the one asking leaves out every built-in service but the Registry that
    answers; what it then lists as its own is not shown.
    """
    with Runtime() as local:
        builtin = [s["name"] for s in _list_services(local, "")]
    remote = [name for name in builtin if name != _REGISTRY]
    with _runtime(args, remote) as rt:
        services = _list_services(rt, args.prefix)
    return [s for s in services if s.get("origin") == "remote"]


def cmd_describe(args: argparse.Namespace) -> int:
    _utf8(args.service, "SERVICE")
    with _runtime(args) as rt:
        reply = rt.call(
            f"{_REGISTRY}/DescribeService",
            json.dumps({"name": args.service}).encode(),
            format=Format.JSON,
        )
    _dump(json.loads(reply), sys.stdout, args.compact)
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    timeout = _seconds(args.timeout, "--timeout", _MAX_DEADLINE_S)
    _utf8(args.method, "METHOD")
    request = _read_json_arg(args.request)
    service = _service_of(args.method)
    with _runtime(args, [service] if service else []) as rt:
        reply = rt.call(args.method, request, format=Format.JSON, timeout=timeout)
    _dump(json.loads(reply) if reply else {}, sys.stdout, args.compact)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    src = _format(args.from_format, "--from")
    dst = _format(args.to_format, "--to")
    _utf8(args.type, "TYPE")
    data = _read_stdin()
    if args.hex and src != Format.JSON:
        try:
            data = binascii.unhexlify(b"".join(data.split()))
        except binascii.Error as bad:
            raise _invalid(f"--hex: stdin is not hex digits: {bad}") from None
    type_name = "" if args.type in ("", "-", "any") else args.type
    out = hms_cffi.convert(type_name, data, src, dst)
    if dst == Format.JSON:
        sys.stdout.write(out.decode() + "\n")
    elif args.hex:
        sys.stdout.write(out.hex() + "\n")
    else:
        sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    count = _count(args.count, "--count")
    timeout = _seconds(args.timeout, "--timeout")
    states = [_member(State, s, "--states") for s in args.states or ()]
    types = [_member(TransitionType, t, "--transition-types") for t in args.transition_types or ()]
    for option, values in (
        ("--kinds", args.kinds),
        ("--subjects", args.subjects),
        ("--agent-ids", args.agent_ids),
    ):
        for value in values or ():
            _utf8(value, option)
    with _runtime(args) as rt:
        sub = rt.subscribe(
            args.kinds,
            args.subjects,
            agent_ids=args.agent_ids,
            states=states,
            transition_types=types,
            format=Format.JSON,
        )
        worker: threading.Thread | None = None
        failure: list[BaseException] = []
        if args.run_demo:
            from hms_cffi import demo

            def activity() -> None:
                try:
                    demo.run(rt, sys.stderr if args.verbose else io.StringIO(), watch=False)
                except BaseException as exc:
                    failure.append(exc)

            worker = threading.Thread(target=activity, name="hms-demo", daemon=True)
            worker.start()
        seen = 0
        # With --run-demo and no --timeout, stop once the demo is over and
        # its events are drained.
        wait = timeout if timeout is not None else (0.5 if args.run_demo else None)
        with sub:
            while count is None or seen < count:
                event = sub.next(wait)
                if event is None:
                    if worker is not None and worker.is_alive():
                        continue
                    break
                _dump(event, sys.stdout, True)
                sys.stdout.flush()
                seen += 1
        if worker is not None:
            worker.join()
        if failure:
            raise failure[0]
    return 0


def _member(enum_type: type[_Member], name: str, option: str) -> _Member:
    try:
        return enum_type.parse(name)
    except ValueError:
        known = " ".join(m.name for m in enum_type if m.name != "UNSPECIFIED")
        raise _invalid(f"{option}: {name!r} is not one of {known}", value=name) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from hms_cffi import demo

    with _runtime(args) as rt:
        demo.run(rt)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = _serve_config(args)
    servers = config.get("nats", {}).get("servers")
    if not servers:
        raise _invalid(
            "hms serve needs a NATS server: give --nats URL (or nats.servers in --config)"
        )
    exports = config["nats"].get("export_services", [])
    if not exports:
        raise _invalid("hms serve has nothing to serve: give --export SERVICE (one or more)")
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda signum, frame: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with Runtime(config) as rt:
            for name in exports:
                # An unknown name would be exported from no registration,
                # silently: refuse it, naming the services there are.
                _describe(rt, name)
            name = config.get("name") or "hms-serve"
            print(
                f"hms serve: {name} serving {', '.join(exports)} on {', '.join(servers)} "
                f"(SIGINT or SIGTERM stops it)",
                flush=True,
            )
            while not stop.wait(0.5):
                pass
            print("hms serve: stopping: no new calls, waiting for the calls in flight", flush=True)
        print("hms serve: stopped cleanly", flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _describe(rt: Runtime, service: str) -> None:
    try:
        rt.call(
            f"{_REGISTRY}/DescribeService",
            json.dumps({"name": service}).encode(),
            format=Format.JSON,
        )
    except HmsError as missing:
        if missing.code != StatusCode.NOT_FOUND:
            raise
        known = ", ".join(s["name"] for s in _list_services(rt, ""))
        raise NotFoundError(
            f"--export: no service {service!r} in this runtime; there are: {known}",
            details={"service": service},
            origin=_ORIGIN,
        ) from None


def _serve_config(args: argparse.Namespace) -> dict[str, Any]:
    """``--config`` (a JSON ``hms.v1.RuntimeConfig``), the options on top:
    ``--name``, ``--data-dir`` and ``--publish-events`` replace, ``--nats``
    and ``--export`` add."""
    config: dict[str, Any] = {}
    if args.config is not None:
        _utf8(args.config, "--config")
        try:
            with open(args.config, "rb") as file:
                raw = file.read()
        except OSError as failed:
            raise _file_error(failed, args.config) from None
        try:
            config = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as bad:
            raise _invalid(f"--config {args.config}: not JSON: {bad}", file=args.config) from None
        if not isinstance(config, dict):
            raise _invalid(
                f"--config {args.config}: not a JSON object (an hms.v1.RuntimeConfig)",
                file=args.config,
            )
    if args.name is not None:
        config["name"] = _utf8(args.name, "--name").decode()
    config.setdefault("name", "hms-serve")
    if args.data_dir:
        config["data_dir"] = _utf8(args.data_dir, "--data-dir").decode()
    nats = config.setdefault("nats", {})
    if not isinstance(nats, dict):
        raise _invalid(f"--config {args.config}: nats is not a JSON object", file=args.config)
    for field, values, option in (
        ("servers", args.nats, "--nats"),
        ("export_services", args.export, "--export"),
    ):
        for value in values or ():
            _utf8(value, option)
        given = nats.get(field, [])
        # A field of the wrong type is left as it is, for the core to report.
        if values and isinstance(given, list):
            nats[field] = [*given, *values]
    if args.publish_events:
        nats["publish_events"] = True
    return config


# -- main -------------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="keep agents, tasks, knowledge and history in DIR (default: in memory)",
    )
    parser.add_argument(
        "--compact", action="store_true", default=default, help="one-line JSON output"
    )


def _nats_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--nats", action="append", metavar="URL", help=f"{what} (repeatable)")


def _serve_parser(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_parser(
        "serve",
        help="serve services to other processes over NATS until SIGINT/SIGTERM",
        description="Runs a runtime that serves the --export services to other processes "
        "through NATS (docs/transport.md) until SIGINT or SIGTERM; then it takes no new "
        "calls, lets those in flight finish and exits with 0.",
    )
    _nats_option(p, "a NATS server to serve through")
    p.add_argument(
        "--export",
        action="append",
        metavar="SERVICE",
        help='a service to serve, e.g. "hms.agent.v1.AgentService" (repeatable)',
    )
    p.add_argument(
        "--name", help="the runtime's name, seen by callers as origin (default: hms-serve)"
    )
    p.add_argument(
        "--publish-events",
        action="store_true",
        help="also publish the runtime's events to NATS (nats.publish_events)",
    )
    p.add_argument(
        "--config", metavar="FILE", help="an hms.v1.RuntimeConfig as JSON; the options add to it"
    )
    p.set_defaults(run=cmd_serve)


def cmd_token_hash(args: argparse.Namespace) -> int:
    from hms_cffi.tokens import new_token, token_line

    if args.new:
        token = new_token()
        # The token once, to stderr, for its holder; stdout gets the line for
        # the token file only, so it can be appended to that file directly.
        print(f"token for {args.principal} (not stored anywhere): {token}", file=sys.stderr)
    else:
        token = sys.stdin.readline().rstrip("\r\n")
    roles = [r for r in args.roles.split(",") if r] if args.roles else []
    print(token_line(args.principal, roles, token))
    return 0


def _token_parser(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_parser(
        "token",
        help="API tokens for RuntimeConfig.security (docs/security.md)",
    )
    tokens = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    h = tokens.add_parser(
        "hash",
        help="print the token-file line of a token read from stdin (or of a new one)",
    )
    h.add_argument("principal", metavar="PRINCIPAL", help="who the token authenticates")
    h.add_argument("--roles", default="", help='comma-separated, e.g. "admin,ops"')
    h.add_argument("--new", action="store_true", help="make a random token and print it on stderr")
    h.set_defaults(run=cmd_token_hash)


_AUDIT = "hms.audit.v1.Audit"
#: How often ``hms audit tail -f`` looks for new records.
_TAIL_POLL_S = 0.2
#: The exit code of ``hms audit verify`` for a broken log (1 is a failed call).
_BROKEN_LOG = 3


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from hms_cffi.proto.hms.audit.v1 import audit_pb2

    _utf8(args.log, "LOG")
    _utf8(args.hmac_key_file, "--hmac-key-file")
    request = audit_pb2.VerifyRequest(path=args.log, hmac_key_file=args.hmac_key_file)
    with Runtime({"name": "hms-cli"}) as rt:
        result = rt.call(f"{_AUDIT}/Verify", request, expect=audit_pb2.VerifyResponse)
    if not result.HasField("first_break"):
        print(
            f"{args.log}: intact, {result.records} records "
            f"(last: {result.last_sequence}, hash {result.last_hash or '-'})"
        )
        return 0
    broken = result.first_break
    how = audit_pb2.Tamper.Name(broken.tamper).lower()
    print(
        f"{args.log}: broken at record {broken.sequence} (line {broken.line}): {how}: "
        f"{broken.message} ({result.records} records intact before it)",
        file=sys.stderr,
    )
    return _BROKEN_LOG


def cmd_audit_tail(args: argparse.Namespace) -> int:
    from hms_cffi.proto.hms.audit.v1 import audit_pb2

    _utf8(args.log, "LOG")
    offset = 0
    with Runtime({"name": "hms-cli"}) as rt:
        while True:
            read = rt.call(
                f"{_AUDIT}/Read",
                audit_pb2.ReadRequest(path=args.log, offset=offset),
                expect=audit_pb2.ReadResponse,
            )
            for record in read.records:
                print(record, flush=True)
            offset = read.next_offset
            if read.records:
                continue
            if not args.follow:
                return 0
            time.sleep(_TAIL_POLL_S)


def _audit_parser(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_parser("audit", help="check and read audit logs (docs/security.md)")
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    v = audit.add_parser(
        "verify", help="check a log's hash chain; exit 3 naming the first broken record"
    )
    v.add_argument("log", metavar="LOG", help="the audit log file")
    v.add_argument(
        "--hmac-key-file", default="", metavar="F", help="the key the log was written with"
    )
    v.set_defaults(run=cmd_audit_verify)
    t = audit.add_parser("tail", help="print a log's records as JSON lines")
    t.add_argument("log", metavar="LOG", help="the audit log file")
    t.add_argument(
        "-f", "--follow", action="store_true", help="keep printing records as they are appended"
    )
    t.set_defaults(run=cmd_audit_tail)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hms",
        description="The HMS core from the command line: calls, schemas, conversion, events.",
        epilog="A failed call prints its status as JSON on stderr and exits with 1.",
    )
    # The common options work before and after the command; SUPPRESS keeps a
    # subcommand's unset copy from hiding the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _common_options(parser, argparse.SUPPRESS)
    _common_options(common, argparse.SUPPRESS)
    parser.set_defaults(data_dir=None, compact=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    real_add = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser_: argparse.ArgumentParser = real_add(name, parents=[common], **kwargs)
        return parser_

    sub.add_parser = add_parser  # type: ignore[method-assign]

    p = sub.add_parser("version", help="library version and ABI")
    p.set_defaults(run=cmd_version)

    p = sub.add_parser("services", help="list registered services")
    p.add_argument("--prefix", default="", help="only names starting with this")
    p.add_argument("--json", action="store_true", help="full descriptors as JSON")
    _nats_option(p, "list the services other processes serve through this NATS server")
    p.set_defaults(run=cmd_services)

    p = sub.add_parser("describe", help="one service's methods and message types")
    p.add_argument("service", metavar="SERVICE", help='e.g. "hms.agent.v1.AgentService"')
    p.set_defaults(run=cmd_describe)

    p = sub.add_parser("call", help="call a method: JSON in, JSON out")
    p.add_argument("method", metavar="METHOD", help='"package.Service/Method"')
    p.add_argument(
        "request", metavar="JSON", nargs="?", help="the request ('-': stdin; default {})"
    )
    # Values are checked by the command, not by argparse, so a bad one is
    # reported as a status like every other bad input (see the docstring).
    p.add_argument("--timeout", metavar="S", help="deadline in seconds")
    _nats_option(p, "call the method in the process that serves it through this NATS server")
    p.set_defaults(run=cmd_call)

    p = sub.add_parser("convert", help="convert a message read from stdin")
    p.add_argument("type", metavar="TYPE", help='full message name; "any": structural CBOR<->JSON')
    formats = "{" + ",".join(sorted(_FORMATS)) + "}"
    p.add_argument("--from", dest="from_format", metavar=formats, required=True)
    p.add_argument("--to", dest="to_format", metavar=formats, required=True)
    p.add_argument("--hex", action="store_true", help="binary input and output as hex text")
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser(
        "events",
        help="follow events as JSON lines",
        description="Follows this process's runtime events as JSON lines. Events are not "
        "stored, so on its own this sees nothing: use --run-demo to watch the demo's "
        "activity, or hms_cffi's Python API to subscribe inside your own program.",
    )
    p.add_argument("--kinds", nargs="+", metavar="K", help='e.g. "task.*" "agent.created"')
    p.add_argument("--subjects", nargs="+", metavar="S")
    p.add_argument("--agent-ids", nargs="+", metavar="ID")
    p.add_argument("--states", nargs="+", metavar="STATE", help="e.g. ACTIVE PAUSED")
    p.add_argument("--transition-types", nargs="+", metavar="TYPE", help="e.g. NORMAL FORCED")
    p.add_argument("--count", metavar="N", help="stop after N events")
    p.add_argument("--timeout", metavar="S", help="stop when no event comes within S seconds")
    p.add_argument("--run-demo", action="store_true", help="run the demo scenario in this process")
    p.add_argument(
        "--verbose", action="store_true", help="with --run-demo: its narration on stderr"
    )
    p.set_defaults(run=cmd_events)

    p = sub.add_parser("demo", help="run the demo scenario (python -m hms_cffi.demo)")
    p.set_defaults(run=cmd_demo)

    _serve_parser(sub.add_parser)
    _token_parser(sub.add_parser)
    _audit_parser(sub.add_parser)
    return parser


def _status_json(exc: HmsError) -> dict[str, Any]:
    code = int(exc.code)
    try:
        name = StatusCode(code).name
    except ValueError:
        name = str(code)
    status: dict[str, Any] = {"code": code, "status": name, "message": exc.message}
    if exc.details:
        status["details"] = exc.details
    if exc.origin:
        status["origin"] = exc.origin
    return status


def _report(exc: HmsError) -> int:
    _dump(_status_json(exc), sys.stderr, True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hms`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except HmsError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(Exception):
            sys.stdout.close()
        return 0
    except OSError as exc:
        return _report(_file_error(exc, str(exc.filename or "a file"), "use"))
    except ValueError as exc:
        # The binding's own refusal of a value (it raises ValueError before
        # the core sees it), which the checks above did not foresee.
        return _report(_invalid(str(exc)))
    except Exception as exc:
        # A failure no input should cause: still a status, never a
        # traceback, but one that says where to report it.
        return _report(
            InternalError(
                f"unexpected {type(exc).__name__} in hms {args.command}: {exc} "
                "(a bug in hms_cffi's command line: please report it)",
                details={"exception": type(exc).__name__},
                origin=_ORIGIN,
            )
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
