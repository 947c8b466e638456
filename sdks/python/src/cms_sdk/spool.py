"""The local spool: requests that could not be delivered, kept on disk until a replay succeeds.

Each file is one request's exact JSON body, named ``<time ns>-<pid>-<seq>.json`` so names sort oldest
first; it is written atomically (temporary file, fsync, rename). A file the endpoint refuses for good
(a non-retryable 4xx) is renamed ``*.rejected`` and left for a human.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import List, Optional


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self._seq = itertools.count(1)

    def _ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def files(self) -> List[Path]:
        """Pending files, oldest first."""
        try:
            return sorted(p for p in self.dir.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def size(self) -> int:
        total = 0
        for p in self.files():
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def write(self, body: bytes, current_size: Optional[int] = None) -> Optional[Path]:
        """Keep ``body``; returns None (nothing written) when the spool would pass its size limit."""
        used = self.size() if current_size is None else current_size
        if used + len(body) > self.max_bytes:
            return None
        self._ensure()
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}.json"
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            target = self.dir / name
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return target

    @staticmethod
    def read(path: Path) -> Optional[bytes]:
        try:
            return path.read_bytes()
        except FileNotFoundError:  # another process replayed it
            return None

    @staticmethod
    def done(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    @staticmethod
    def reject(path: Path) -> None:
        try:
            os.replace(path, path.with_name(path.name + ".rejected"))
        except FileNotFoundError:
            pass
