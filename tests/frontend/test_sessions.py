from __future__ import annotations

import time

import pytest

from chimp.frontend.sessions import SessionSigner, new_user_id, valid_user_id


def test_a_signed_session_names_its_user() -> None:
    signer = SessionSigner(key=b"k" * 32, max_age_s=60)
    assert signer.user(signer.sign("alice")) == "alice"


def test_a_forged_or_foreign_session_is_nobody() -> None:
    signer = SessionSigner(key=b"k" * 32, max_age_s=60)
    cookie = signer.sign("alice")
    payload, mac = cookie.rsplit(".", 1)
    other = SessionSigner(key=b"x" * 32, max_age_s=60)
    assert other.user(cookie) is None
    assert signer.user(payload + "." + mac[::-1]) is None
    assert signer.user("garbage") is None
    assert signer.user(None) is None


def test_an_expired_session_is_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = SessionSigner(key=b"k" * 32, max_age_s=60)
    cookie = signer.sign("alice")
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert signer.user(cookie) is None


def test_user_ids_are_random_and_checked() -> None:
    first, second = new_user_id(), new_user_id()
    assert first != second
    assert valid_user_id(first)
    assert not valid_user_id("../../etc")
    assert not valid_user_id(None)
