"""``hms``: the HMS core from the command line (stdlib argparse only).

::

    hms version                                  library version and ABI
    hms services [--prefix P]                    registered services
    hms describe SERVICE                         one service's methods and types
    hms call METHOD [JSON | -]                   JSON in, JSON out (like grpcurl)
    hms convert TYPE --from F --to F [--hex]     stdin to stdout, F: json|cbor|protobuf
    hms events [--kinds K ...] [--count N] [--timeout S] [--run-demo]
    hms demo                                     python -m hms_cffi.demo

Every command runs on a fresh runtime of its own, in memory unless
``--data-dir`` names a folder (then agents, tasks, knowledge and lifecycle
history persist from one command to the next; one process at a time may
hold a folder). Events are not stored: ``hms events`` sees only what
happens in its own process, which is why ``--run-demo`` exists.

A failed call prints its ``hms.v1.Status`` as JSON on stderr (with the code's
name under ``"status"``) and exits with 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import io
import json
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

import hms_cffi
from hms_cffi.domain.enums import State, TransitionType
from hms_cffi.errors import HmsError, StatusCode
from hms_cffi.formats import Format
from hms_cffi.runtime import Runtime

__all__ = ["main"]

_FORMATS = {
    "json": Format.JSON,
    "cbor": Format.CBOR,
    "protobuf": Format.PROTOBUF,
    "pb": Format.PROTOBUF,
}


def _runtime(args: argparse.Namespace) -> Runtime:
    config: dict[str, Any] = {"name": "hms-cli"}
    if args.data_dir:
        config["data_dir"] = args.data_dir
    return Runtime(config)


def _dump(value: Any, out: TextIO, compact: bool) -> None:
    if compact:
        out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _read_json_arg(text: str | None) -> bytes:
    if text is None:
        return b"{}"
    if text == "-":
        text = sys.stdin.read()
    text = text.strip() or "{}"
    json.loads(text)  # a clear error before the core sees it
    return text.encode()


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


def cmd_services(args: argparse.Namespace) -> int:
    with _runtime(args) as rt:
        reply = rt.call(
            "hms.registry.v1.Registry/ListServices",
            json.dumps({"name_prefix": args.prefix}).encode(),
            format=Format.JSON,
        )
    services = json.loads(reply).get("services", [])
    if args.json:
        _dump(services, sys.stdout, args.compact)
        return 0
    for service in services:
        methods = ", ".join(m["name"] for m in service.get("methods", []))
        version = f" {service['version']}" if service.get("version") else ""
        print(f"{service['name']}{version}: {methods}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    with _runtime(args) as rt:
        reply = rt.call(
            "hms.registry.v1.Registry/DescribeService",
            json.dumps({"name": args.service}).encode(),
            format=Format.JSON,
        )
    _dump(json.loads(reply), sys.stdout, args.compact)
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    request = _read_json_arg(args.request)
    with _runtime(args) as rt:
        reply = rt.call(args.method, request, format=Format.JSON, timeout=args.timeout)
    _dump(json.loads(reply) if reply else {}, sys.stdout, args.compact)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    src, dst = _FORMATS[args.from_format], _FORMATS[args.to_format]
    data = sys.stdin.buffer.read()
    if args.hex and src != Format.JSON:
        data = binascii.unhexlify(b"".join(data.split()))
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
    states = [State.parse(s) for s in args.states or ()]
    types = [TransitionType.parse(t) for t in args.transition_types or ()]
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
        wait = args.timeout if args.timeout is not None else (0.5 if args.run_demo else None)
        with sub:
            while args.count is None or seen < args.count:
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


def cmd_demo(args: argparse.Namespace) -> int:
    from hms_cffi import demo

    with _runtime(args) as rt:
        demo.run(rt)
    return 0


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
    p.set_defaults(run=cmd_services)

    p = sub.add_parser("describe", help="one service's methods and message types")
    p.add_argument("service", metavar="SERVICE", help='e.g. "hms.agent.v1.AgentService"')
    p.set_defaults(run=cmd_describe)

    p = sub.add_parser("call", help="call a method: JSON in, JSON out")
    p.add_argument("method", metavar="METHOD", help='"package.Service/Method"')
    p.add_argument(
        "request", metavar="JSON", nargs="?", help="the request ('-': stdin; default {})"
    )
    p.add_argument("--timeout", type=float, metavar="S", help="deadline in seconds")
    p.set_defaults(run=cmd_call)

    p = sub.add_parser("convert", help="convert a message read from stdin")
    p.add_argument("type", metavar="TYPE", help='full message name; "any": structural CBOR<->JSON')
    p.add_argument("--from", dest="from_format", choices=sorted(_FORMATS), required=True)
    p.add_argument("--to", dest="to_format", choices=sorted(_FORMATS), required=True)
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
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument(
        "--timeout", type=float, metavar="S", help="stop when no event comes within S seconds"
    )
    p.add_argument("--run-demo", action="store_true", help="run the demo scenario in this process")
    p.add_argument(
        "--verbose", action="store_true", help="with --run-demo: its narration on stderr"
    )
    p.set_defaults(run=cmd_events)

    p = sub.add_parser("demo", help="run the demo scenario (python -m hms_cffi.demo)")
    p.set_defaults(run=cmd_demo)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hms`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except HmsError as exc:
        _dump(_status_json(exc), sys.stderr, True)
        return 1
    except json.JSONDecodeError as exc:
        _dump(
            {
                "code": 3,
                "status": "INVALID_ARGUMENT",
                "message": f"not JSON: {exc}",
                "origin": "hms",
            },
            sys.stderr,
            True,
        )
        return 1
    except (binascii.Error, ValueError) as exc:
        _dump(
            {"code": 3, "status": "INVALID_ARGUMENT", "message": str(exc), "origin": "hms"},
            sys.stderr,
            True,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(Exception):
            sys.stdout.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
