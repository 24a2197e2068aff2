"""What the command line tells its user: the errors that end a run (UsageError, exit code 2; OutputError, exit code
1) or skip one input (InputError, exit code 1), messages on stderr written above the progress bar, and the progress bar itself."""
from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator


class UsageError(Exception):
    """A wrong command line, option combination or model for the subcommand: exit code 2."""


class OutputError(Exception):
    """An output cannot be written once the run is under way (disk full, stdout closed): the run stops, what was
    computed is kept (the message says where), exit code 1."""


class InputError(Exception):
    """One input cannot be processed (unreadable, empty, too short): it is reported and skipped (exit code 1)."""


_BAR: Any = None  # the active tqdm bar: messages are written above it


def log(message: str) -> None:
    """A message on stderr (results go to stdout or files)."""
    if _BAR is not None:
        _BAR.write(f"wavlm: {message}", file=sys.stderr)
    else:
        print(f"wavlm: {message}", file=sys.stderr, flush=True)


@contextmanager
def warnings_logged() -> Iterator[None]:
    """Python warnings raised inside the block become `wavlm: warning: ...` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log(f"warning: {w.message}")


class Progress:
    """A tqdm bar on stderr, or plain progress lines when tqdm is not installed."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.total, self.desc, self.done, self.bar = total, desc, 0, None
        self.enabled = enabled and total > 0
        self._last = 0.0
        if self.enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)
                global _BAR
                _BAR = self.bar
            except ImportError:
                pass

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (time.monotonic() - self._last > 2.0 or self.done == self.total):
            self._last = time.monotonic()
            print(f"{self.desc}: {self.done}/{self.total} files", file=sys.stderr, flush=True)

    def close(self) -> None:
        global _BAR
        if self.bar is not None:
            self.bar.close()
            _BAR = None
