"""``chimp-train``: run the training API or worker, and drive a running API from a terminal.

    chimp-train serve | worker
    chimp-train plugins
    chimp-train datasets list | upload NAME FILE.zip [--overwrite] | delete NAME
    chimp-train run PLUGIN --arg k=v ... --dataset key=name ... [--user ID] [--no-promote] [--json]
    chimp-train models rollback NAME
    chimp-train models pretrained [--wheel PATH | --hdf5 PATH]   (talks to MLflow directly)
    chimp-train models import NAME FILE.onnx --labels ... --input 64x64 | set-metadata NAME V ...

Client commands talk HTTP to ``--url`` (default: this machine's training API). The bearer token
is ``CHIMP_AUTH__TOKEN``, else the ``admin-token`` file that ``chimp up`` writes in the data
folder (``CHIMP_DATA_DIR``, default ``./.chimp``).

Exit status: 0 done; 1 the task failed; 2 a mistake to fix (a bad flag or argument, a missing
file or token, a request the API refused with 4xx); 3 the API cannot be reached or failed
(5xx); 4 the task was cancelled; 130 interrupted with Ctrl-C (the task is cancelled too).

Each subcommand is an ``add_<name>(commands)`` function that declares its parser and sets its
handler, a function ``(args, settings) -> exit status``; :data:`SUBCOMMANDS` lists them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydantic import ValidationError

from chimp.shared.auth import TOKEN_FILE_NAME
from chimp.shared.cli import EXIT_USAGE, OneLineParser, UsageError, fail, settings_problem
from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from chimp.training import import_cli
from chimp.training.config import TrainingSettings
from chimp.training.pretrained import command as pretrained_command

PROG = "chimp-train"
EXIT_OK, EXIT_FAILED, EXIT_API, EXIT_CANCELLED, EXIT_INTERRUPTED = 0, 1, 3, 4, 130
POLL_S = 0.5
BAR_WIDTH = 30
# Metrics the run summary shows first when a result or version has them.
KEY_METRICS = ("test_accuracy", "val_accuracy", "macro_f1", "test_loss")

Handler = Callable[[argparse.Namespace, TrainingSettings], int]


class ApiError(Exception):
    """The API could not be reached or failed (exit 3)."""


@dataclass(frozen=True)
class Token:
    value: str | None
    looked: str  # where it was looked for, for the message of a 401


def find_token(settings: TrainingSettings) -> Token:
    """``CHIMP_AUTH__TOKEN``, else ``<data dir>/admin-token``, else none (and where we looked)."""
    if settings.auth.token is not None:
        return Token(settings.auth.token.get_secret_value(), "CHIMP_AUTH__TOKEN")
    path = settings.data_dir / TOKEN_FILE_NAME
    looked = f"CHIMP_AUTH__TOKEN (not set) and {path.resolve()}"
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        return Token(None, looked + " (no such file)")
    return Token(value or None, looked + ("" if value else " (empty)"))


def _client(args: argparse.Namespace, settings: TrainingSettings) -> httpx.Client:
    token = find_token(settings)
    args.token_looked = token.looked
    headers = {"Authorization": f"Bearer {token.value}"} if token.value else {}
    return httpx.Client(base_url=args.url, headers=headers, timeout=60.0)


def _problems(detail: Any) -> str | None:
    """``arguments.epochs: Input should be ...; datasets.train: ...`` from a 422's detail."""
    if not isinstance(detail, list):
        return None
    parts = [
        f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
        for d in detail
        if isinstance(d, dict)
    ]
    return "; ".join(parts) or None


def _check(response: httpx.Response, args: argparse.Namespace) -> Any:
    """The JSON body of a 2xx; a 4xx is the user's to fix (UsageError), anything else ApiError."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
        message, detail = body.get("error", response.text), body.get("detail")
    except ValueError:
        message, detail = response.text.strip()[:200], None
    text = f"HTTP {response.status_code}: {_problems(detail) or message}"
    if response.status_code == 401:
        looked = getattr(args, "token_looked", "CHIMP_AUTH__TOKEN")
        raise UsageError(
            f"{text}; the token was looked for in {looked}: run 'chimp up' once (it writes "
            "the file) or export CHIMP_AUTH__TOKEN"
        )
    if 400 <= response.status_code < 500:
        raise UsageError(text)
    raise ApiError(text)


def _coerce(value: str, kind: str) -> Any:
    """Turn a command-line string into the argument's declared type (the API is strict)."""
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return value


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} must look like key=value, got {item!r}")
        pairs[key] = value
    return pairs


def _typed_arguments(plugin: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
    kinds = {a["name"]: a["type"] for a in plugin.get("arguments", [])}
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in kinds:
            typed[name] = value  # the API names unknown arguments in its 422
            continue
        try:
            typed[name] = _coerce(value, kinds[name])
        except ValueError:
            raise UsageError(
                f"--arg {name}: expected {kinds[name]}, got {value!r} (see '{PROG} plugins')"
            ) from None
    return typed


def _bar(task: TaskInfo, out: TextIO) -> None:
    filled = round(task.progress * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    line = f"\r[{bar}] {task.progress * 100:5.1f}% {task.status.value:9} {task.message[:60]}"
    out.write(line.ljust(110))
    out.flush()


def follow(client: httpx.Client, task_id: str, out: TextIO, args: argparse.Namespace) -> TaskInfo:
    """Poll the task, drawing a progress bar, until it is finished."""
    while True:
        task = TaskInfo.model_validate(_check(client.get(f"/tasks/{task_id}"), args))
        _bar(task, out)
        if task.status.finished:
            out.write("\n")
            return task
        time.sleep(POLL_S)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _decision_line(decision: Any) -> str | None:
    """``verdict: <verdict> - <reason>`` from a gate :class:`Decision` as the result holds it."""
    if not isinstance(decision, dict) or "verdict" not in decision:
        return None
    reason = decision.get("reason")
    return f"verdict: {decision['verdict']}" + (f" - {reason}" if reason else "")


def summarize(task: TaskInfo) -> list[str]:
    """A few lines a person reads at the end of ``run``: what ran, what it made, how good."""
    took = ""
    if task.started_at and task.finished_at:
        took = f" in {(task.finished_at - task.started_at).total_seconds():.0f} s"
    lines = [f"task {task.task_id} ({task.plugin}) {task.status.value}{took}"]
    if task.error:
        lines.append(f"error: {task.error}")
    result = task.result or {}
    metrics: dict[str, Any] = {k: result[k] for k in KEY_METRICS if k in result}
    for model in result.get("models") or []:
        if not isinstance(model, dict):
            continue
        aliases = ", ".join(model.get("aliases") or []) or "no alias"
        lines.append(f"registered {model.get('name')} v{model.get('version')} ({aliases})")
        lines += filter(None, [_decision_line(model.get("decision"))])
        for key in KEY_METRICS:
            if key not in metrics and key in (model.get("metrics") or {}):
                metrics[key] = model["metrics"][key]
    # The task's decision is its version's decision too: said once.
    overall = _decision_line(result.get("decision"))
    if overall is not None and overall not in lines:
        lines.append(overall)
    if metrics:
        lines.append("metrics: " + ", ".join(f"{k} {_number(v)}" for k, v in metrics.items()))
    elif result and not result.get("models"):
        shown = [(k, v) for k, v in result.items() if isinstance(v, str | int | float | bool)]
        if shown:
            lines.append("result: " + ", ".join(f"{k}={_number(v)}" for k, v in shown[:6]))
    return lines


# -- subcommands ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        plugin = _check(client.get(f"/plugins/{args.plugin}"), args)
        body: dict[str, Any] = {
            "arguments": _typed_arguments(plugin, _pairs(args.arg, "--arg")),
            "datasets": _pairs(args.dataset, "--dataset"),
            "promote": args.promote,
        }
        if args.user is not None:
            body["user_id"] = args.user
        task = TaskInfo.model_validate(
            _check(client.post(f"/tasks/run/{args.plugin}", json=body), args)
        )
        print(f"task {task.task_id} queued", file=sys.stderr)
        if args.no_follow:
            print(task.task_id)
            return EXIT_OK
        try:
            final = follow(client, task.task_id, sys.stderr, args)
        except KeyboardInterrupt:
            client.post(f"/tasks/{task.task_id}/cancel")
            print(f"\ninterrupted: task {task.task_id} cancelled", file=sys.stderr)
            return EXIT_INTERRUPTED
    if args.json:
        print(final.model_dump_json(indent=2))
    else:
        print("\n".join(summarize(final)))
    if final.status is TaskStatus.SUCCEEDED:
        return EXIT_OK
    return EXIT_CANCELLED if final.status is TaskStatus.CANCELLED else EXIT_FAILED


def add_run(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run a plugin and follow it with a progress bar",
        description="Queue a plugin run, draw its progress, and end with a short summary "
        "(task, status, the version registered, the gate's verdict, key metrics). "
        f"'{PROG} plugins' lists each plugin's arguments and datasets.",
    )
    run.add_argument("plugin", help="plugin name, e.g. emotion_recognition")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                     help="a plugin argument (repeat), e.g. --arg epochs=10")  # fmt: skip
    run.add_argument("--dataset", action="append", default=[], metavar="KEY=NAME",
                     help="a stored dataset per dataset key, e.g. train=faces")  # fmt: skip
    run.add_argument("--user", help="calibrate for this user (alias user-<id>)")
    run.add_argument(
        "--no-promote",
        dest="promote",
        action="store_false",
        help="never replace production (by default the new version is promoted if it passes "
        "the evaluation gate)",
    )
    run.add_argument("--promote", action="store_true", help=argparse.SUPPRESS)  # the default
    run.add_argument("--no-follow", action="store_true", help="print the task id and return")
    run.add_argument("--json", action="store_true", help="print the whole task document at the end")
    run.set_defaults(handler=cmd_run)


def _argument_rule(arg: dict[str, Any]) -> str:
    operators = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
    rules = [f"{op} {arg[key]}" for key, op in operators if arg.get(key) is not None]
    if arg.get("choices"):
        rules.append("one of " + "|".join(map(str, arg["choices"])))
    return f" [{', '.join(rules)}]" if rules else ""


def cmd_plugins(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        for plugin in _check(client.get("/plugins"), args):
            print(f"{plugin['name']} {plugin['version']}: {plugin['description']}")
            for arg in plugin["arguments"]:
                extra = f" = {arg['default']!r}" if arg["optional"] else " (required)"
                rule = _argument_rule(arg)
                print(f"    --arg {arg['name']}:{arg['type']}{extra}{rule}  {arg['description']}")
            for ds in plugin["datasets"]:
                note = " (optional)" if ds["optional"] else ""
                print(f"    --dataset {ds['name']}=NAME{note}  {ds['description']}")
    return EXIT_OK


def add_plugins(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    plugins = commands.add_parser(
        "plugins",
        help="list plugins, their arguments (with bounds and choices) and datasets",
        description="List the plugins the training API can run.",
    )
    plugins.set_defaults(handler=cmd_plugins)


def cmd_datasets_list(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        for ds in _check(client.get("/datasets"), args):
            print(f"{ds['name']}\t{ds['files']} files\t{ds['size_bytes']} bytes")
    return EXIT_OK


def cmd_models_rollback(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        moved = _check(client.post(f"/models/{args.name}/rollback"), args)
    print(f"{args.name}: production {moved['previous']} -> {moved['version']}")
    return EXIT_OK


def cmd_models_import(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        return import_cli.run(args, client, lambda response: _check(response, args))


def add_models(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    models = commands.add_parser(
        "models",
        help="roll back production, register the pretrained model",
        description="Registered models: 'rollback' moves production to the previous champion "
        "along the alias history; 'pretrained' registers the pretrained FER2013 model.",
    )
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    rollback = actions.add_parser(
        "rollback", help="move production back to the previous champion (from the history)"
    )
    rollback.add_argument("name", help="the registered model, e.g. emotion-recognition")
    rollback.set_defaults(handler=cmd_models_rollback)
    pretrained_command.add_parser(actions)
    import_cli.add_commands(actions)
    for name in import_cli.ACTIONS:
        actions.choices[name].set_defaults(handler=cmd_models_import)


def cmd_datasets_upload(args: argparse.Namespace, settings: TrainingSettings) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}" if not path.exists() else f"not a file: {path}")
    with _client(args, settings) as client, path.open("rb") as fh:
        info = _check(
            client.post(
                "/datasets",
                files={"file": (path.name, fh, "application/zip")},
                data={"dataset_name": args.name, "overwrite": str(args.overwrite).lower()},
            ),
            args,
        )
    print(f"uploaded {info['name']}: {info['files']} files, {info['size_bytes']} bytes")
    return EXIT_OK


def cmd_datasets_delete(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        _check(client.delete(f"/datasets/{args.name}"), args)
    print(f"deleted {args.name}")
    return EXIT_OK


def add_datasets(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    datasets = commands.add_parser(
        "datasets",
        help="list, upload and delete stored datasets",
        description="Datasets are zips of train/<label>/*.png|jpg (optional test/<label>/) "
        "or a FER2013 CSV, stored under a name that plugins refer to.",
    )
    actions = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list stored datasets with file count and size")
    listing.set_defaults(handler=cmd_datasets_list)
    upload = actions.add_parser("upload", help="upload a zip as a dataset")
    upload.add_argument("name", help="dataset name: letters, digits, . _ - (up to 64)")
    upload.add_argument("file", help="the zip file to upload")
    upload.add_argument("--overwrite", action="store_true", help="replace a dataset of that name")
    upload.set_defaults(handler=cmd_datasets_upload)
    delete = actions.add_parser("delete", help="delete a stored dataset")
    delete.add_argument("name", help="the dataset to delete")
    delete.set_defaults(handler=cmd_datasets_delete)


def cmd_serve(args: argparse.Namespace, settings: TrainingSettings) -> int:
    import uvicorn

    from chimp.shared.logging import setup_logging
    from chimp.training.app import create_app

    setup_logging(settings.log_level, service="chimp-train")
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.training.host,
        port=args.port or settings.training.port,
        log_config=None,
    )
    return EXIT_OK


def add_serve(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the training API",
        description="Run the training API (settings from CHIMP_* variables, see "
        "docs/configuration.md).",
    )
    serve.add_argument("--host", help="bind address (CHIMP_TRAINING__HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CHIMP_TRAINING__PORT, default 5253)")
    serve.set_defaults(handler=cmd_serve)


def cmd_worker(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from chimp.shared.logging import setup_logging
    from chimp.training.worker import create_worker

    setup_logging(settings.log_level, service="chimp-train-worker")
    create_worker(settings).run()
    return EXIT_OK


def add_worker(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    worker = commands.add_parser(
        "worker",
        help="run a training worker",
        description="Run an arq worker that takes training tasks from Redis (CHIMP_REDIS_URL).",
    )
    worker.set_defaults(handler=cmd_worker)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[OneLineParser]], None]] = [
    add_serve,
    add_worker,
    add_plugins,
    add_datasets,
    add_run,
    add_models,
]


def build_parser(settings: TrainingSettings) -> OneLineParser:
    default_url = f"http://{settings.training.host}:{settings.training.port}"
    parser = OneLineParser(
        prog=PROG,
        description="CHIMP training: run the training API or a worker, or drive a running API "
        "(token: CHIMP_AUTH__TOKEN, else <CHIMP_DATA_DIR>/admin-token).",
    )
    parser.add_argument("--url", default=default_url, help=f"training API (default {default_url})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        settings = TrainingSettings()
    except ValidationError as exc:
        return fail(PROG, settings_problem(exc))
    args = build_parser(settings).parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except UsageError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except ApiError as exc:
        return fail(PROG, str(exc), EXIT_API)
    except httpx.HTTPError as exc:
        return fail(
            PROG, f"cannot reach {args.url} ({exc}); is the stack up ('make up')?", EXIT_API
        )
    except OSError as exc:
        return fail(PROG, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
