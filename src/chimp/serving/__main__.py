"""``python -m chimp.serving``: the same as ``chimp-serving``."""

from chimp.serving.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
