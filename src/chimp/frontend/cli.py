"""Command line entrypoint of the frontend service."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chimp-frontend", description="CHIMP frontend service")
    parser.parse_args(argv)
    print("chimp-frontend: not built yet")
    return 0
