"""What the entry points share: argument errors in one line, and output to a pipe that may close early.

Used by `python -m bqnn.describe` and `python -m bqnn.report`:

    p = Parser(prog="bqnn.describe", ...)            # a bad argument: "bqnn.describe: error: ...", exit 2
    emit(json.dumps(result))                         # `... | head` closing the pipe is not an error

A leaf: imports nothing of bqnn.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn

_INT = re.compile(r"[0-9]{1,9}")  # ASCII digits, at most 9 of them: what a count or a size needs


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (and exit 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def count(text: str) -> int:
    """argparse type: a non-negative integer written with at most 9 ASCII digits."""
    if not _INT.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number of at most 9 digits, got {text!r}")
    return int(text)


def emit(text: str) -> None:
    """Print `text`; if the reader has gone (a closed pipe), drop the output quietly instead of a traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
        os.close(devnull)
