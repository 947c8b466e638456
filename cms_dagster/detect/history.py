"""The detector's building blocks: bounded histories and the statistics kept over them.

:class:`Ring` (a bounded history with a sorted mirror), :class:`Profile` (a seasonal profile per slot of a
day or week), :class:`Tail` (a channel's calibration: surprise in decades against its own history) and
:class:`Trend` (Mann-Kendall over block medians, for slow drifts). :class:`StreamingDetector`
(:mod:`cms_dagster.detect.detector`) combines them. Plain Python floats and integers, deterministic,
serializable.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort

__all__ = ["NS", "Profile", "Ring", "Tail", "Trend", "normal_tail_decades"]

NS = 1_000_000_000
LN10 = math.log(10.0)


class Ring:
    """Bounded history (oldest dropped first) with an optional sorted mirror."""

    __slots__ = ("cap", "buf", "pos", "srt")

    def __init__(self, cap: int, keep_sorted: bool, values: list[float] | None = None) -> None:
        self.cap = cap
        self.buf: list[float] = list(values or [])[-cap:] if cap > 0 else []
        self.pos = 0
        self.srt: list[float] | None = sorted(self.buf) if keep_sorted else None

    def push(self, x: float) -> float | None:
        old = None
        if len(self.buf) < self.cap:
            self.buf.append(x)
        else:
            old = self.buf[self.pos]
            self.buf[self.pos] = x
            self.pos += 1
            if self.pos == self.cap:
                self.pos = 0
        srt = self.srt
        if srt is not None:
            if old is not None:
                del srt[bisect_left(srt, old)]
            insort(srt, x)
        return old

    def median(self) -> float:
        s = self.srt
        n = len(s)  # type: ignore[arg-type]
        m = n // 2
        if n % 2:
            return s[m]  # type: ignore[index]
        return 0.5 * (s[m - 1] + s[m])  # type: ignore[index]

    def ordered(self) -> list[float]:
        return self.buf[self.pos :] + self.buf[: self.pos]

    def __len__(self) -> int:
        return len(self.buf)


class Profile:
    """Seasonal profile: per slot of the period, the mean value of each of the last cycles."""

    __slots__ = (
        "name",
        "period_s",
        "bucket_s",
        "cycles",
        "neighbors",
        "n_slots",
        "slots",
        "offsets",
        "err_num",
        "err_den",
        "count",
        "memo_cycle",
        "memo",
    )

    def __init__(
        self, name: str, period_s: int, bucket_s: int, cycles: int, offset_window: int, neighbors: int
    ) -> None:
        self.name = name
        self.neighbors = neighbors
        self.n_slots = -(-period_s // bucket_s)
        self.period_s = period_s
        self.bucket_s = bucket_s
        self.cycles = cycles
        # slot -> list of [cycle, sum, count], oldest first
        self.slots: dict[int, list[list]] = {}
        self.offsets = Ring(offset_window, True)
        self.err_num = 0.0
        self.err_den = 0.0
        self.count = 0
        # raw() of each slot in the current cycle: it reads only earlier cycles, which no longer change once
        # time is in this one (update() touches the current cycle), so it is computed once per slot and cycle
        # instead of at every point (derived, not part of the state)
        self.memo_cycle: int | None = None
        self.memo: dict[int, float | None] = {}

    def raw(self, t_s: int) -> float | None:
        """The profile's value for ``t_s``: the median of the slot's (and its neighbors') means over the
        last ``cycles`` cycles before ``t_s``'s, or None without any. Times must not go back."""
        return self._memoized((t_s % self.period_s) // self.bucket_s, t_s // self.period_s)

    def _memoized(self, slot: int, cycle: int) -> float | None:
        """:meth:`raw_uncached`, computed once per slot and cycle (see ``memo``)."""
        if cycle != self.memo_cycle:
            self.memo_cycle, self.memo = cycle, {}
        if slot not in self.memo:
            self.memo[slot] = self.raw_uncached(slot, cycle)
        return self.memo[slot]

    def around(self, t_s: int, width: int, min_cycles: int = 1) -> list[float]:
        """:meth:`raw` of ``t_s``'s slot and of the ``width`` slots on each side of it, from the same earlier
        cycles; empty unless ``t_s``'s own slot holds at least ``min_cycles`` of them. Times must not go
        back."""
        slot = (t_s % self.period_s) // self.bucket_s
        cycle = t_s // self.period_s
        lo = cycle - self.cycles
        if sum(lo <= e[0] < cycle for e in self.slots.get(slot, ())) < min_cycles:
            return []
        values = (self._memoized(j % self.n_slots, cycle) for j in range(slot - width, slot + width + 1))
        return [v for v in values if v is not None]

    def raw_uncached(self, slot: int, cycle: int) -> float | None:
        """:meth:`raw` computed from the slots (what the memo holds)."""
        lo = cycle - self.cycles
        if self.neighbors:
            vals = []
            for j in range(slot - self.neighbors, slot + self.neighbors + 1):
                entries = self.slots.get(j % self.n_slots)
                if entries:
                    vals.extend(e[1] / e[2] for e in entries if lo <= e[0] < cycle)
            vals.sort()
        else:
            entries = self.slots.get(slot)
            if not entries:
                return None
            vals = sorted(e[1] / e[2] for e in entries if lo <= e[0] < cycle)
        n = len(vals)
        if n == 0:
            return None
        m = n // 2
        return vals[m] if n % 2 else 0.5 * (vals[m - 1] + vals[m])

    def update(self, t_s: int, x: float) -> None:
        slot = (t_s % self.period_s) // self.bucket_s
        cycle = t_s // self.period_s
        entries = self.slots.get(slot)
        if entries is None:
            self.slots[slot] = [[cycle, x, 1]]
            return
        last = entries[-1]
        if last[0] == cycle:
            last[1] += x
            last[2] += 1
        else:
            entries.append([cycle, x, 1])
            lo = cycle - self.cycles
            while entries[0][0] < lo:
                del entries[0]

    def to_dict(self) -> dict:
        return {
            "slots": {str(k): v for k, v in self.slots.items()},
            "offsets": self.offsets.ordered(),
            "err": [self.err_num, self.err_den],
            "count": self.count,
        }

    def load(self, d: dict) -> None:
        self.slots = {int(k): [list(e) for e in v] for k, v in d["slots"].items()}
        self.memo_cycle, self.memo = None, {}
        self.offsets = Ring(self.offsets.cap, True, d["offsets"])
        self.err_num, self.err_den = d["err"]
        self.count = d["count"]


class Tail:
    """A channel's calibration history: surprise of a new value against the last ``cap`` values."""

    __slots__ = ("ring",)

    def __init__(self, cap: int, values: list[float] | None = None) -> None:
        self.ring = Ring(cap, True, values)

    def push(self, x: float) -> None:
        self.ring.push(x)

    def surprise(
        self, x: float, floor: float, min_history: int, tail_fraction: float, floor_top: float, cap: float
    ) -> float:
        s = self.ring.srt
        n = len(s)  # type: ignore[arg-type]
        if n < min_history:
            return 0.0
        k = n - bisect_left(s, x)  # type: ignore[arg-type]
        if k > 0:
            return min(-math.log10(k / (n + 1)), cap)
        m = max(int(tail_fraction * n), 5)
        top = s[-m:]  # type: ignore[index]
        beta = sum(top) / m - s[-m - 1]  # type: ignore[index]
        floor = max(floor, floor_top * top[-1])
        if beta < floor:
            beta = floor
        return min(math.log10(n + 1), cap) + (x - top[-1]) / beta / LN10


def normal_tail_decades(z: float) -> float:
    """``-log10 P(Z >= z)`` for a standard normal ``Z`` (0 for z <= 0)."""
    if z <= 0:
        return 0.0
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    if p > 0:
        return -math.log10(p)
    # far tail: log of the asymptotic form phi(z) / z
    return (z * z / 2.0 + math.log(z * math.sqrt(2.0 * math.pi))) / LN10


class Trend:
    """Slow drifts: do the medians of the last blocks (hours) keep climbing, or falling?

    At the first point of each new block, the Mann-Kendall statistic of the medians of the last
    ``n_blocks`` complete blocks (sign of every later-minus-earlier pair) is turned into a one-sided normal
    tail, in decades. It only counts when it beats every value of the last ``memory`` blocks, so a
    recurring shape (a daily cycle) or a series that always climbs (a counter) does not alarm every hour.
    """

    __slots__ = ("block_ns", "n_blocks", "memory", "sd", "block", "values", "medians", "recent")

    def __init__(self, block_s: int, n_blocks: int, memory: int) -> None:
        self.block_ns = block_s * NS
        self.n_blocks = n_blocks
        self.memory = memory
        n = n_blocks
        self.sd = math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
        self.block: int | None = None
        self.values: list[float] = []
        self.medians: list[float] = []
        self.recent: list[float] = []

    def update(self, ts: int, x: float) -> tuple[float, int]:
        """Returns (surprise, direction) at the first point of a block (else (0, 0)), then learns ``x``."""
        block = ts // self.block_ns
        out = (0.0, 0)
        if block != self.block:
            if self.values:
                v = sorted(self.values)
                m = len(v) // 2
                self.medians.append(v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m]))
                del self.medians[: -self.n_blocks]
                if len(self.medians) == self.n_blocks:
                    med = self.medians
                    mk = 0
                    for i, a in enumerate(med):
                        for b in med[i + 1 :]:
                            mk += (b > a) - (b < a)
                    s = normal_tail_decades((abs(mk) - 1) / self.sd)  # continuity-corrected
                    if self.recent and s > max(self.recent):
                        out = (s, 1 if mk > 0 else -1)
                    self.recent.append(s)
                    del self.recent[: -self.memory]
            self.block = block
            self.values = []
        self.values.append(x)
        return out

    def restart(self) -> None:
        """Forget the blocks so far (the series it sees changed meaning); keep the memory of surprises."""
        self.block = None
        self.values = []
        self.medians = []

    def to_dict(self) -> dict:
        return {"block": self.block, "values": self.values, "medians": self.medians, "recent": self.recent}

    def load(self, d: dict) -> None:
        self.block = d["block"]
        self.values = list(d["values"])
        self.medians = list(d["medians"])
        self.recent = list(d["recent"])
