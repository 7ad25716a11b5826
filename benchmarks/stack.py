"""`chimp up` cold start and idle memory.

    .venv/bin/python benchmarks/stack.py [--idle-s 20] [--runs 1]

Starts `chimp up` in a fresh temp data folder on free ports, with its own redis-server (so
Redis is part of the figures), and prints:
- cold start: seconds from launching `chimp up` to its "all services are ready" line;
- idle RSS: the resident memory of `chimp up` and every process under it, summed, after
  ``--idle-s`` seconds of idling, per service and in total (read from /proc).
Then stops it with SIGINT like Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHIMP = str(Path(sys.executable).parent / "chimp")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(root: int) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def subtree(root: int, tree: dict[int, list[int]]) -> list[int]:
    found, todo = [root], [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


SERVICES = {  # a substring of the leader's command line -> the service name
    "redis-server": "redis",
    "mlflow server": "mlflow",
    "chimp-train serve": "training",
    "chimp-train worker": "worker",
    "chimp-serving": "serving",
    "chimp-frontend": "frontend",
}


def measure(idle_s: float) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIMP_")}
        env["CHIMP_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing there: own Redis
        flags = [
            f"--{n}-port={free_port()}"
            for n in ("mlflow", "redis", "training", "serving", "frontend")
        ]
        started = time.monotonic()
        proc = subprocess.Popen(
            [CHIMP, "up", "--data-dir", f"{tmp}/data", *flags],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        log: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.append(line)
                if "all services are ready" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            while not ready.wait(0.1):
                if proc.poll() is not None:
                    sys.exit("chimp up exited before ready:\n" + "".join(log[-40:]))
            cold = time.monotonic() - started
            time.sleep(idle_s)
            tree = children_of(proc.pid)
            per_service: dict[str, int] = {"chimp up": rss(proc.pid)}
            for child in tree.get(proc.pid, []):
                name = next((n for k, n in SERVICES.items() if k in cmdline(child)), str(child))
                per_service[name] = sum(rss(p) for p in subtree(child, tree))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
    return cold, per_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for run in range(1, args.runs + 1):
        cold, per_service = measure(args.idle_s)
        total = sum(per_service.values())
        print(f"run {run}: cold start to all ready: {cold:.1f} s")
        for name, value in sorted(per_service.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<10} {value / 2**20:8.0f} MiB")
        idle = f"RSS at idle ({args.idle_s:.0f} s after ready)"
        print(f"  {'total':<10} {total / 2**20:8.0f} MiB {idle}")


if __name__ == "__main__":
    main()
