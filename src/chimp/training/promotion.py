"""Which aliases a newly registered version gets (until an evaluation gate decides).

- The first version of a model name (no ``production`` alias yet) becomes ``production``.
- A later version becomes ``staging``, or ``production`` when the run asked to promote.
- A calibration run (a user id) points ``user-<id>`` at its version, and also ``production``
  when there is none yet, so a brand-new user gets live predictions from their own frames.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from chimp.shared.errors import BadRequestError
from chimp.shared.registry import PRODUCTION, STAGING, user_alias

# The shape user_alias() produces.
_USER_ALIAS = re.compile(r"^user-[A-Za-z0-9_-]{1,64}$")


def aliases_for_new_version(
    existing: Mapping[str, str], *, user_id: str | None, promote: bool
) -> list[str]:
    """The aliases to point at a new version, given the model's ``existing`` alias -> version."""
    has_production = PRODUCTION in existing
    if user_id is not None:
        aliases = [user_alias(user_id)]
        if not has_production or promote:
            aliases.append(PRODUCTION)
        return aliases
    if not has_production or promote:
        return [PRODUCTION]
    return [STAGING]


def check_alias(alias: str) -> None:
    """Only the aliases CHIMP gives meaning to may be moved through the API."""
    if alias in (PRODUCTION, STAGING) or _USER_ALIAS.match(alias):
        return
    raise BadRequestError(
        f"unknown alias '{alias}': use 'production', 'staging' or 'user-<id>'",
        detail={"alias": alias},
    )
