from __future__ import annotations

from chimp.frontend.passwords import hash_password, verify_password


def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse!", encoded)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("pw") != hash_password("pw")


def test_a_malformed_hash_never_matches() -> None:
    for bad in ("", "plain", "scrypt$1$2$3$%%$%%", "bcrypt$x$y$z$a$b", "scrypt$x$8$1$AA==$AA=="):
        assert not verify_password("pw", bad)
