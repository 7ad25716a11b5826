"""The umbrella ``chimp`` command."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chimp", description="CHIMP umbrella command")
    parser.parse_args(argv)
    print("chimp: not built yet")
    return 0
