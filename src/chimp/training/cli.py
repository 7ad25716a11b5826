"""``chimp-train``: run the training API or worker, and drive a running API from a terminal.

    chimp-train serve | worker
    chimp-train plugins
    chimp-train datasets list | upload NAME FILE.zip [--overwrite] | delete NAME
    chimp-train run PLUGIN --arg k=v ... --dataset key=name ... [--user ID] [--no-promote]
    chimp-train models rollback NAME

Client commands talk HTTP to ``--url`` (default: this machine's training API) and send
``CHIMP_AUTH__TOKEN`` as the bearer token. ``run`` follows the task with a progress bar and
exits 0 on success, 1 on failure, 2 on cancel, 3 when the API cannot be reached or refuses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from chimp.training.config import TrainingSettings

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_API = 0, 1, 2, 3
POLL_S = 0.5
BAR_WIDTH = 30


class ApiError(Exception):
    pass


def _client(args: argparse.Namespace, settings: TrainingSettings) -> httpx.Client:
    headers = {}
    if settings.auth.token is not None:
        headers["Authorization"] = f"Bearer {settings.auth.token.get_secret_value()}"
    return httpx.Client(base_url=args.url, headers=headers, timeout=60.0)


def _check(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
        message = body.get("error", response.text)
        detail = body.get("detail")
    except ValueError:
        message, detail = response.text, None
    text = f"HTTP {response.status_code}: {message}"
    if isinstance(detail, list):
        text += "".join(
            f"\n  - {'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
            for d in detail
            if isinstance(d, dict)
        )
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


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(f"{what} must look like key=value, got {item!r}")
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
            raise ApiError(f"argument {name}: expected {kinds[name]}, got {value!r}") from None
    return typed


def _bar(task: TaskInfo, out: TextIO) -> None:
    filled = round(task.progress * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    line = f"\r[{bar}] {task.progress * 100:5.1f}% {task.status.value:9} {task.message[:60]}"
    out.write(line.ljust(110))
    out.flush()


def follow(client: httpx.Client, task_id: str, out: TextIO) -> TaskInfo:
    """Poll the task, drawing a progress bar, until it is finished."""
    while True:
        task = TaskInfo.model_validate(_check(client.get(f"/tasks/{task_id}")))
        _bar(task, out)
        if task.status.finished:
            out.write("\n")
            return task
        time.sleep(POLL_S)


def cmd_run(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        plugin = _check(client.get(f"/plugins/{args.plugin}"))
        body: dict[str, Any] = {
            "arguments": _typed_arguments(plugin, _pairs(args.arg, "--arg")),
            "datasets": _pairs(args.dataset, "--dataset"),
            "promote": args.promote,
        }
        if args.user is not None:
            body["user_id"] = args.user
        task = TaskInfo.model_validate(_check(client.post(f"/tasks/run/{args.plugin}", json=body)))
        print(f"task {task.task_id} queued", file=sys.stderr)
        if args.no_follow:
            print(task.task_id)
            return EXIT_OK
        try:
            final = follow(client, task.task_id, sys.stderr)
        except KeyboardInterrupt:
            client.post(f"/tasks/{task.task_id}/cancel")
            print("\ncancelled", file=sys.stderr)
            return EXIT_CANCELLED
    if final.status is TaskStatus.SUCCEEDED:
        print(json.dumps(final.result, indent=2))
        decision = (final.result or {}).get("decision")
        if isinstance(decision, dict):  # the evaluation gate's verdict, last so it is seen
            print(f"gate: {decision.get('verdict')}: {decision.get('reason')}", file=sys.stderr)
        return EXIT_OK
    if final.status is TaskStatus.CANCELLED:
        print("task cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"task failed: {final.error}", file=sys.stderr)
    return EXIT_FAILED


def cmd_plugins(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        for plugin in _check(client.get("/plugins")):
            print(f"{plugin['name']} {plugin['version']}: {plugin['description']}")
            for arg in plugin["arguments"]:
                extra = f" = {arg['default']!r}" if arg["optional"] else " (required)"
                print(f"    --arg {arg['name']}:{arg['type']}{extra}  {arg['description']}")
            for ds in plugin["datasets"]:
                note = " (optional)" if ds["optional"] else ""
                print(f"    --dataset {ds['name']}=NAME{note}  {ds['description']}")
    return EXIT_OK


def cmd_datasets(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        if args.action == "list":
            for ds in _check(client.get("/datasets")):
                print(f"{ds['name']}\t{ds['files']} files\t{ds['size_bytes']} bytes")
        elif args.action == "upload":
            with Path(args.file).open("rb") as fh:
                info = _check(
                    client.post(
                        "/datasets",
                        files={"file": (Path(args.file).name, fh, "application/zip")},
                        data={"dataset_name": args.name, "overwrite": str(args.overwrite).lower()},
                    )
                )
            print(f"uploaded {info['name']}: {info['files']} files, {info['size_bytes']} bytes")
        else:
            _check(client.delete(f"/datasets/{args.name}"))
            print(f"deleted {args.name}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace, settings: TrainingSettings) -> int:
    with _client(args, settings) as client:
        moved = _check(client.post(f"/models/{args.name}/rollback"))
    print(f"{args.name}: production {moved['previous']} -> {moved['version']}")
    return EXIT_OK


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


def cmd_worker(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from chimp.shared.logging import setup_logging
    from chimp.training.worker import create_worker

    setup_logging(settings.log_level, service="chimp-train-worker")
    create_worker(settings).run()
    return EXIT_OK


def build_parser(settings: TrainingSettings) -> argparse.ArgumentParser:
    default_url = f"http://{settings.training.host}:{settings.training.port}"
    parser = argparse.ArgumentParser(prog="chimp-train", description="CHIMP training service")
    parser.add_argument("--url", default=default_url, help=f"training API (default {default_url})")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the training API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=cmd_serve)

    sub.add_parser("worker", help="run a training worker").set_defaults(handler=cmd_worker)
    sub.add_parser("plugins", help="list plugins and their arguments").set_defaults(
        handler=cmd_plugins
    )

    datasets = sub.add_parser("datasets", help="manage stored datasets")
    actions = datasets.add_subparsers(dest="action", required=True)
    actions.add_parser("list")
    upload = actions.add_parser("upload", help="upload a zip as a dataset")
    upload.add_argument("name")
    upload.add_argument("file")
    upload.add_argument("--overwrite", action="store_true")
    delete = actions.add_parser("delete")
    delete.add_argument("name")
    datasets.set_defaults(handler=cmd_datasets)

    run = sub.add_parser("run", help="run a plugin and follow it")
    run.add_argument("plugin")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--dataset", action="append", default=[], metavar="KEY=NAME")
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
    run.set_defaults(handler=cmd_run)

    models = sub.add_parser("models", help="manage registered models")
    model_actions = models.add_subparsers(dest="action", required=True)
    rollback = model_actions.add_parser(
        "rollback", help="move production back to the previous champion"
    )
    rollback.add_argument("name")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    settings = TrainingSettings()
    args = build_parser(settings).parse_args(argv)
    try:
        code: int = args.handler(args, settings)
    except ApiError as exc:
        print(f"chimp-train: {exc}", file=sys.stderr)
        return EXIT_API
    except httpx.HTTPError as exc:
        print(f"chimp-train: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_API
    return code


if __name__ == "__main__":
    sys.exit(main())
