"""The committed OpenAPI documents are the code's: a contract change is always a reviewed diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chimp.stack.openapi import DEFAULT_FOLDER, FACTORIES, documents, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return {name: render(doc) for name, doc in documents().items()}


@pytest.mark.parametrize("service", sorted(FACTORIES))
def test_committed_document_matches_the_code(service: str, generated: dict[str, str]) -> None:
    committed = ROOT / DEFAULT_FOLDER / f"{service}.json"
    assert committed.exists(), f"{committed} missing: run scripts/openapi and commit it"
    assert json.loads(committed.read_text(encoding="utf-8")) == json.loads(generated[service]), (
        f"the {service} API differs from {committed.relative_to(ROOT)}: "
        "run scripts/openapi and commit the diff"
    )


def test_generation_is_deterministic(
    generated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's settings must not leak in (ports, tokens, paths).
    monkeypatch.setenv("CHIMP_SERVING__PORT", "1234")
    monkeypatch.setenv("CHIMP_AUTH__TOKEN", "not-in-the-document")
    again = {name: render(doc) for name, doc in documents().items()}
    assert again == generated
    assert not any("not-in-the-document" in text for text in again.values())
