"""``chimp-frontend``: run the web app, or hash a password for the optional sign-in."""

from __future__ import annotations

import argparse
import getpass
import sys

from pydantic import ValidationError

from chimp.shared.cli import OneLineParser, fail, settings_problem


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chimp.frontend.app import create_app
    from chimp.frontend.config import FrontendSettings
    from chimp.shared.logging import setup_logging

    try:
        settings = FrontendSettings()
    except ValidationError as exc:
        return fail("chimp-frontend", settings_problem(exc))
    cfg = settings.frontend
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"frontend": cfg.model_copy(update=overrides)})
        cfg = settings.frontend
    setup_logging(settings.log_level, service="frontend")
    uvicorn.run(
        create_app(settings),
        host=cfg.host,
        port=cfg.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the handler setup_logging installed
        proxy_headers=True,
        # The sans-I/O websockets protocol: the legacy one is deprecated upstream.
        ws="websockets-sansio",
    )
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from chimp.frontend.passwords import hash_password

    password = args.password
    if password is None:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 1
    if not password:
        print("empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="chimp-frontend", description="CHIMP web app (live emotions, calibration, training)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the web app (the default)",
        description="Run the web app (settings from CHIMP_* variables, see docs/configuration.md).",
    )
    for p in (parser, serve):
        p.add_argument("--host", default=None, help="bind address (CHIMP_FRONTEND__HOST)")
        p.add_argument("--port", type=int, default=None, help="port (CHIMP_FRONTEND__PORT)")
    hp = sub.add_parser(
        "hash-password",
        help='print a hash for CHIMP_FRONTEND__USERS, e.g. \'{"alice": "<hash>"}\'',
        description="Print a scrypt hash of a password for the optional sign-in.",
    )
    hp.add_argument("--password", default=None, help="read from the terminal when omitted")
    args = parser.parse_args(argv)
    if args.command == "hash-password":
        return _hash_password(args)
    return _serve(args)
