"""Framework vs raw server throughput: ``python benchmarks/throughput.py [--json]``.

The same as ``personae bench``; see personae/bench.py for what is measured.
"""

from personae.cli import app

if __name__ == "__main__":
    import sys

    app(["bench", *sys.argv[1:]])
