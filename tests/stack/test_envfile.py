"""`chimp init` and .env.example: one template, secrets only in the generated file."""

from __future__ import annotations

import stat
from pathlib import Path

from chimp.cli import main
from chimp.stack.envfile import VARIABLES, render

REPO = Path(__file__).resolve().parents[2]


def parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_env_example_is_the_template_with_blank_secrets() -> None:
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    assert example == render(with_secrets=False)
    values = parse(example)
    for var in VARIABLES:
        assert var.name in values
        if var.generate is not None:
            assert values[var.name] == "", f"{var.name} must be blank in .env.example"


def test_init_writes_private_env_with_fresh_secrets(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"

    assert main(["init", "--output", str(first)]) == 0
    assert main(["init", "--output", str(second)]) == 0

    a, b = parse(first.read_text()), parse(second.read_text())
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    for var in VARIABLES:
        if var.generate is not None:
            assert len(a[var.name]) >= 8
            assert a[var.name] != b[var.name]
        else:
            assert a[var.name] == var.value
    assert a["COMPOSE_PROFILES"] == "default"


def test_init_keeps_an_existing_env_unless_forced(tmp_path: Path, capsys: object) -> None:
    target = tmp_path / ".env"
    target.write_text("KEEP=me\n")

    assert main(["init", "--output", str(target)]) == 1
    assert target.read_text() == "KEEP=me\n"
    assert main(["init", "--output", str(target), "--force"]) == 0
    assert "S3_ADMIN_PASSWORD=" in target.read_text()
