"""Command line entrypoint of the serving service."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chimp-serving", description="CHIMP serving service")
    parser.parse_args(argv)
    print("chimp-serving: not built yet")
    return 0
