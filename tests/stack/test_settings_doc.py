"""docs/configuration.md lists every setting the code reads."""

from __future__ import annotations

from pathlib import Path

from chimp.stack.settings_doc import SECTIONS, section_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [
        row.env
        for _title, path, section in SECTIONS
        for row in section_rows(path, section)
        if f"`{row.env}`" not in text
    ]
    assert missing == [], "regenerate: python -m chimp.stack.settings_doc > docs/configuration.md"
