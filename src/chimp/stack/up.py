"""``chimp up``: decide what to start, then hand the specs to the supervisor."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TextIO

from chimp.shared.auth import TOKEN_FILE_NAME, ensure_token_file
from chimp.stack.config import StackSettings
from chimp.stack.readiness import redis_answers
from chimp.stack.services import (
    StackError,
    StackPlan,
    build_specs,
    local_redis_url,
    shared_env,
)
from chimp.stack.spec import ServiceSpec
from chimp.stack.supervisor import EXIT_FAILED, EXIT_PORT_IN_USE, StackOptions, Supervisor


async def plan_stack(settings: StackSettings, out: TextIO) -> StackPlan:
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if await redis_answers(settings.redis_url):
        out.write(f"[chimp] using the Redis at {settings.redis_url} (CHIMP_REDIS_URL)\n")
        redis_url, start_redis = settings.redis_url, False
    else:
        redis_url, start_redis = local_redis_url(settings), True
        out.write(
            f"[chimp] no Redis answers at {settings.redis_url} (CHIMP_REDIS_URL): chimp up "
            f"runs its own redis-server, data in {data_dir / 'redis'}\n"
        )
    return StackPlan(data_dir=data_dir, redis_url=redis_url, start_redis=start_redis)


def admin_token(settings: StackSettings, data_dir: Path) -> tuple[str, str | None]:
    """The token every service enforces, and a note to show when it was just generated."""
    if settings.auth.token is not None:
        return settings.auth.token.get_secret_value(), None
    path = data_dir / TOKEN_FILE_NAME
    first_run = not path.exists()
    token = ensure_token_file(data_dir)
    if not first_run:
        return token, None
    return token, (
        f"admin token (generated now, kept in {path}):\n"
        f"[chimp]   {token}\n"
        "[chimp] send it as 'Authorization: Bearer <token>' to the APIs' admin endpoints."
    )


async def run_up(
    settings: StackSettings,
    base_env: dict[str, str],
    skip: Collection[str] = (),
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    try:
        plan = await plan_stack(settings, stream)
        specs = [s for s in build_specs(settings, plan) if s.name not in skip]
    except StackError as exc:
        stream.write(f"[chimp] ERROR: {exc}\n")
        return EXIT_FAILED
    options = StackOptions(
        host=settings.stack.host,
        ready_timeout_s=settings.stack.ready_timeout_s,
        stop_grace_s=settings.stack.stop_grace_s,
    )
    # Ports first: a run that starts nothing must not create the token (and "use up" its
    # one-time display) either.
    if not Supervisor(specs, {}, options, stream).ports_are_free():
        return EXIT_PORT_IN_USE
    token, token_note = admin_token(settings, plan.data_dir)
    stream.write(f"[chimp] data folder: {plan.data_dir}\n")
    env = {**base_env, **shared_env(settings, plan, token)}
    supervisor = Supervisor(specs, env, options, stream)
    notes = [n for n in (token_note, _browser_hint(specs)) if n]
    return await supervisor.run(on_ready="\n[chimp] ".join(notes) or None)


def _browser_hint(specs: list[ServiceSpec]) -> str | None:
    frontend = next((s for s in specs if s.name == "frontend"), None)
    return f"open {frontend.url} in a browser." if frontend and frontend.url else None


def up(settings: StackSettings, base_env: dict[str, str], skip: Collection[str] = ()) -> int:
    return asyncio.run(run_up(settings, base_env, skip))
