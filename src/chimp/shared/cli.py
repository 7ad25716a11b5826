"""What every CHIMP command line shares: one-line errors and exit status 2 for user mistakes.

A user who mistypes a flag, names a missing file or sets a bad ``CHIMP_*`` variable gets one
line naming the problem (and where to look), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from pydantic import ValidationError

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake the user can fix; its message is the one line they see."""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line that also says where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def settings_problem(exc: ValidationError) -> str:
    """One line naming each bad setting as its environment variable."""
    names = [
        "CHIMP_" + "__".join(str(part) for part in error["loc"]).upper() + f": {error['msg']}"
        for error in exc.errors()
    ]
    return "bad setting " + "; ".join(names)


def fail(prog: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code
