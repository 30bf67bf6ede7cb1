"""``python -m aifabric``: the same command line as the ``aifabric`` console script."""

from aifabric.cli import run

if __name__ == "__main__":
    run()
