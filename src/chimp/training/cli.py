"""Command line entrypoint of the training service."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chimp-train", description="CHIMP training service")
    parser.parse_args(argv)
    print("chimp-train: not built yet")
    return 0
