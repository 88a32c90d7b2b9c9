"""The `llmos` command line: a thin shell over the Python API, one module per command group."""

__all__ = ["main"]


def main() -> None:
    from llmos.cli.main import main as _main

    _main()
