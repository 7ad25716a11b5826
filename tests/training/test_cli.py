"""``chimp-train`` against a real training API (uvicorn on a free port) and a real worker.

Every user mistake is one line on stderr and exit status 2; the token comes from
``CHIMP_AUTH__TOKEN`` or the data folder's ``admin-token``; ``run`` ends with a summary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from chimp.shared.auth import TOKEN_FILE_NAME
from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from chimp.training.app import create_app
from chimp.training.cli import main, summarize
from chimp.training.config import TrainingSettings
from tests.frontend.browser import serve
from tests.training.conftest import SettingsFactory, running_worker
from tests.training.synthetic import write_folder_dataset, zip_folder

TOKEN = "cli-secret-token"


@pytest.fixture
def settings(make_settings: SettingsFactory) -> TrainingSettings:
    settings = make_settings()
    settings.auth.token = SecretStr(TOKEN)
    return settings


@pytest.fixture
def api(settings: TrainingSettings, redis_client: object) -> Iterator[str]:
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no .env and no token in the environment: like a fresh shell."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("CHIMP_AUTH__TOKEN", "CHIMP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def dataset_zip(tmp_path: Path) -> Path:
    return zip_folder(write_folder_dataset(tmp_path / "faces", per_label=1), tmp_path / "f.zip")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``chimp-train ARGV`` (argparse exits by itself)."""
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_the_token_comes_from_the_data_folder_file(
    api: str, home: Path, dataset_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".chimp").mkdir()
    (home / ".chimp" / TOKEN_FILE_NAME).write_text(TOKEN + "\n")
    code, out, err = cli(capsys, "--url", api, "datasets", "upload", "faces", str(dataset_zip))
    assert code == 0, err
    assert out.startswith("uploaded faces: 7 files")


def test_the_data_folder_follows_chimp_data_dir(
    api: str,
    home: Path,
    tmp_path: Path,
    dataset_zip: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path / "state"
    elsewhere.mkdir()
    (elsewhere / TOKEN_FILE_NAME).write_text(TOKEN)
    monkeypatch.setenv("CHIMP_DATA_DIR", str(elsewhere))
    code, _, err = cli(capsys, "--url", api, "datasets", "upload", "faces", str(dataset_zip))
    assert code == 0, err


def test_a_missing_token_says_where_it_looked(
    api: str, home: Path, dataset_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "--url", api, "datasets", "upload", "faces", str(dataset_zip))
    assert code == 2
    line = one_line(err)
    assert "HTTP 401" in line
    assert "CHIMP_AUTH__TOKEN" in line
    assert str(home / ".chimp" / TOKEN_FILE_NAME) in line


def test_a_missing_file_is_one_line(
    api: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "--url", api, "datasets", "upload", "faces", "nope.zip")
    assert code == 2
    assert one_line(err) == "chimp-train: no such file: nope.zip"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "example", "--arg", "steps=many"], "steps"),
        (["run", "example", "--arg", "greeting=x", "--arg", "steps=0"], "arguments.steps"),
        (["run", "example", "--arg", "greeting"], "--arg"),
        (["run", "nope"], "nope"),
        (["run", "example", "--epochs", "3"], "--epochs"),
        (["datasets", "upload", "only-a-name"], "file"),
        (["bogus"], "bogus"),
    ],
)
def test_a_bad_argument_is_one_line_with_status_2(
    api: str, home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    (home / ".chimp").mkdir()
    (home / ".chimp" / TOKEN_FILE_NAME).write_text(TOKEN)
    code, _, err = cli(capsys, "--url", api, *argv)
    assert code == 2
    assert named in one_line(err)


def test_bad_settings_are_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHIMP_TRAINING__PORT", "not-a-port")
    code, _, err = cli(capsys, "plugins")
    assert code == 2
    assert "CHIMP_TRAINING__PORT" in one_line(err)


def test_an_unreachable_api_is_one_line_with_status_3(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "--url", "http://127.0.0.1:9", "plugins")
    assert code == 3
    assert "cannot reach http://127.0.0.1:9" in one_line(err)


@pytest.mark.parametrize(
    "argv",
    [[], ["serve"], ["worker"], ["plugins"], ["datasets"], ["datasets", "list"],
     ["datasets", "upload"], ["datasets", "delete"], ["run"]],
)  # fmt: skip
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = cli(capsys, *argv, "--help")
    assert code == 0
    assert text.startswith("usage: chimp-train")
    if argv == ["datasets"]:
        for action in ("list", "upload", "delete"):  # each action with a line of its own
            assert re.search(rf"^ +{action} +\w", text, re.MULTILINE), text
    body = text.split("\n\n", 1)[1]
    assert len(body.strip()) > 20, text


async def test_run_ends_with_a_short_summary_and_json_keeps_the_document(
    api: str, home: Path, settings: TrainingSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".chimp").mkdir()
    (home / ".chimp" / TOKEN_FILE_NAME).write_text(TOKEN)
    run = ["--url", api, "run", "example", "--arg", "greeting=hello", "--arg", "steps=3"]
    async with running_worker(settings):
        code = await anyio.to_thread.run_sync(main, run)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "100.0%" in err
        lines = out.strip().splitlines()
        assert lines[0].startswith("task ")
        assert "(example) succeeded" in lines[0]
        assert "greeting=hello" in out
        assert len(lines) <= 6, out

        code = await anyio.to_thread.run_sync(main, [*run, "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        document = json.loads(out)
        assert document["status"] == "succeeded"
        assert document["result"] == {"greeting": "hello", "steps": 3}
        assert document["arguments"]["greeting"] == "hello"

        failing = ["--url", api, "run", "example", "--arg", "greeting=x", "--arg", "fail=true"]
        code = await anyio.to_thread.run_sync(main, failing)
        out, _ = capsys.readouterr()
        assert code == 1
        assert "example failure after 5 steps" in out


def test_the_summary_names_the_version_the_verdict_and_key_metrics() -> None:
    now = datetime.now(UTC)
    task = TaskInfo(
        task_id="abc123",
        plugin="emotion_recognition",
        status=TaskStatus.SUCCEEDED,
        progress=1.0,
        created_at=now,
        started_at=now - timedelta(seconds=42),
        finished_at=now,
        result={
            "test_accuracy": 0.61234,
            "labels": ["a", "b"],
            "models": [
                {
                    "name": "emotion-recognition",
                    "version": "3",
                    "aliases": ["staging"],
                    "metrics": {"macro_f1": 0.5, "test_loss": 1.25},
                    "decision": {"verdict": "rejected", "reason": "not better than v2"},
                }
            ],
        },
    )
    assert summarize(task) == [
        "task abc123 (emotion_recognition) succeeded in 42 s",
        "registered emotion-recognition v3 (staging)",
        "verdict: rejected - not better than v2",
        "metrics: test_accuracy 0.6123, macro_f1 0.5, test_loss 1.25",
    ]
