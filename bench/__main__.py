"""Run the benchmarks: `python -m bench` runs every bench_*.py module, `python -m bench inference ...` one.

Arguments after the bench name go to that bench's own `main(argv)`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )


def main(argv: list[str]) -> None:
    names = available()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benches:", ", ".join(names))
        return
    selected, rest = ([argv[0]], argv[1:]) if argv and not argv[0].startswith("-") else (names, argv)
    for name in selected:
        if name not in names:
            raise SystemExit(f"unknown bench {name!r}; available: {', '.join(names)}")
        importlib.import_module(f"bench.bench_{name}").main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
