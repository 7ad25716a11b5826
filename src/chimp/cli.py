"""The umbrella ``chimp`` command: ``chimp up``, ``chimp init``, ``chimp version``."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import ValidationError

from chimp.shared.cli import OneLineParser, fail, settings_problem

PORT_FLAGS = {
    # flag: (section, field) in StackSettings
    "mlflow_port": ("stack", "mlflow_port"),
    "redis_port": ("stack", "redis_port"),
    "training_port": ("training", "port"),
    "serving_port": ("serving", "port"),
    "frontend_port": ("frontend", "port"),
}


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="chimp", description="CHIMP: run the whole pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="start the whole stack on this machine",
        description="Start MLflow, Redis, the training API and worker, serving and the web app; "
        "wait until all are ready; Ctrl-C stops everything. Flags override CHIMP_* settings.",
    )
    up.add_argument("--data-dir", type=Path, help="folder for all state (CHIMP_DATA_DIR)")
    up.add_argument("--host", help="interface to bind (CHIMP_STACK__HOST, default 127.0.0.1)")
    for flag, (section, field) in PORT_FLAGS.items():
        env = f"CHIMP_{section.upper()}__{field.upper()}"
        up.add_argument(f"--{flag.replace('_', '-')}", type=int, metavar="PORT", help=f"({env})")
    up.add_argument(
        "--skip",
        default="",
        metavar="NAMES",
        help="comma-separated services not to start, e.g. frontend,worker",
    )

    init = commands.add_parser(
        "init",
        help="write a .env for docker compose with new secrets",
        description="Write a .env with new random secrets for docker compose.",
    )
    init.add_argument("--output", type=Path, default=Path(".env"), help="default: ./.env")
    init.add_argument("--force", action="store_true", help="replace an existing file")

    commands.add_parser(
        "version", help="print the installed version", description="Print CHIMP's version."
    )
    return parser


def _up(args: argparse.Namespace) -> int:
    from chimp.stack.config import StackSettings
    from chimp.stack.up import up

    try:
        settings = StackSettings()
    except ValidationError as exc:
        return fail("chimp up", settings_problem(exc))
    if args.data_dir is not None:
        settings.data_dir = args.data_dir
    if args.host is not None:
        settings.stack = settings.stack.model_copy(update={"host": args.host})
    for flag, (section, field) in PORT_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            current = getattr(settings, section)
            setattr(settings, section, current.model_copy(update={field: value}))
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    try:
        return up(settings, dict(os.environ), skip)
    except KeyboardInterrupt:  # Ctrl-C before the supervisor took over the signal
        print("chimp up: interrupted before anything was started", file=sys.stderr)
        return 130


def _init(args: argparse.Namespace) -> int:
    from chimp.stack.envfile import EnvFileExistsError, write_env_file

    try:
        write_env_file(args.output, force=args.force)
    except EnvFileExistsError as exc:
        print(f"chimp init: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} with new random secrets; next: docker compose up -d")
    return 0


def _version() -> int:
    try:
        print(f"chimp {version('chimp')}")
    except PackageNotFoundError:
        print("chimp (not installed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "init":
        return _init(args)
    return _version()


if __name__ == "__main__":
    sys.exit(main())
