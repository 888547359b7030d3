"""A progress bar that is tqdm when installed and plain stderr lines when not."""

from __future__ import annotations

import sys


class Progress:
    """``step(label)`` marks one unit of work done; ``note(text)`` prints around the bar."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self._bar = None
        self._done, self._total, self._enabled = 0, total, enabled
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                print("tqdm not installed: progress shown as plain lines", file=sys.stderr)
            else:
                self._bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def describe(self, label: str) -> None:
        """Say what is running now (before it finishes)."""
        if self._bar is not None:
            self._bar.set_description_str(label)
        elif self._enabled:
            print(f"[{self._done}/{self._total}] {label} ...", file=sys.stderr, flush=True)

    def step(self, n: int = 1) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
