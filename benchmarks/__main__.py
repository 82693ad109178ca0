"""`python -m benchmarks` lists the benchmarks; `python -m benchmarks NAME [args...]` runs one."""

from __future__ import annotations

import importlib
import sys

from benchmarks import common
from benchmarks.catalog import find_benchmarks


def main(argv: list[str] | None = None) -> int:
    """List the benchmarks, or run the one named first with the arguments after it; its exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    benchmarks = find_benchmarks()
    if not args or args[0] in ("-h", "--help"):
        width = max(len(name) for name in benchmarks)
        print("usage: python -m benchmarks NAME [args...]   (NAME --help: its options)\n")
        for benchmark in benchmarks.values():
            print(f"  {benchmark.name:<{width}}  {benchmark.summary}")
        return 0
    name, rest = args[0], args[1:]
    if name not in benchmarks:
        print(f"no benchmark named {name!r}; `python -m benchmarks` lists them", file=sys.stderr)
        return 2
    module = importlib.import_module(benchmarks[name].module)
    # argparse's usage line and the command a results JSON records read sys.argv, as under `python -m`.
    sys.argv = [f"python -m benchmarks {name}", *rest]
    common.start_run()
    status = module.main(rest)
    return 0 if status is None else int(status)


if __name__ == "__main__":
    raise SystemExit(main())
