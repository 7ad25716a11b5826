"""``chimp up``: decide what to start, then hand the specs to the supervisor."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection
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
from chimp.stack.supervisor import EXIT_FAILED, StackOptions, Supervisor


async def plan_stack(settings: StackSettings, out: TextIO) -> StackPlan:
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if await redis_answers(settings.redis_url):
        out.write(f"[chimp] using the Redis at {settings.redis_url} (CHIMP_REDIS_URL)\n")
        redis_url, start_redis = settings.redis_url, False
    else:
        redis_url, start_redis = local_redis_url(settings), True
        out.write(
            f"[chimp] no Redis answers at {settings.redis_url}; starting redis-server "
            f"with its data in {data_dir / 'redis'}\n"
        )
    if settings.auth.token is not None:
        token = settings.auth.token.get_secret_value()
    else:
        first_run = not (data_dir / TOKEN_FILE_NAME).exists()
        token = ensure_token_file(data_dir)
        if first_run:
            out.write(
                f"[chimp] generated the admin token (kept in {data_dir / TOKEN_FILE_NAME}):\n"
                f"[chimp]   {token}\n"
                "[chimp] send it as 'Authorization: Bearer <token>' to admin endpoints.\n"
            )
    return StackPlan(data_dir=data_dir, redis_url=redis_url, start_redis=start_redis, token=token)


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
    stream.write(f"[chimp] data folder: {plan.data_dir}\n")
    options = StackOptions(
        host=settings.stack.host,
        ready_timeout_s=settings.stack.ready_timeout_s,
        stop_grace_s=settings.stack.stop_grace_s,
    )
    supervisor = Supervisor(specs, {**base_env, **shared_env(settings, plan)}, options, stream)
    frontend = next((s for s in specs if s.name == "frontend"), None)
    hint = f"open {frontend.url} in a browser." if frontend and frontend.url else None
    return await supervisor.run(on_ready=hint)


def up(settings: StackSettings, base_env: dict[str, str], skip: Collection[str] = ()) -> int:
    return asyncio.run(run_up(settings, base_env, skip))
