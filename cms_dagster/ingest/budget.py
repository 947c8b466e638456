"""A memory budget for the request bodies in flight: being read, inflated, or waiting to be decoded.

Each request holds a :class:`Reservation` that grows as its body arrives and as it inflates (gzip). A
step that would take the receiver past the budget is refused with 429 and ``Retry-After``, except for
a request that is alone in the budget (so a request within the body limit always gets through on an
idle receiver). Decoding itself is done one request at a time (see :mod:`cms_dagster.ingest.app`), so
the memory of decoded objects is bounded by the largest single request (body and point limits), not by
how many arrive at once. Thread-safe.
"""

from __future__ import annotations

import threading

from cms_dagster.ingest.decode import BodyError


class MemoryBudget:
    """``limit`` bytes shared by the requests in decoding."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0
        self._lock = threading.Lock()

    def reserve(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One request's share of a :class:`MemoryBudget`; ``release()`` when the request is done with it."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.amount = 0

    def grow(self, n: int) -> None:
        b = self.budget
        with b._lock:
            if b.used + n > b.limit and b.used > self.amount:
                b.refused += 1
                raise BodyError(
                    429,
                    f"receiver holds {b.used >> 20} MiB of request bodies (budget {b.limit >> 20} MiB): "
                    "retry after the indicated delay",
                )
            b.used += n
            self.amount += n

    def release(self) -> None:
        with self.budget._lock:
            self.budget.used -= self.amount
            self.amount = 0
