"""Admission control: one bound over everything a request costs, decided before any work.

A request is admitted or refused (429 with Retry-After) before its upload is read; once
admitted it holds a ticket until its answer is sent: while it uploads, decodes, waits for
label embeddings and for the model. Tickets also account the upload bytes held in memory,
so many slow or large uploads together cannot exhaust it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from ..engine.errors import Overloaded


class Ticket:
    def __init__(self, gate: Admission) -> None:
        self._gate, self.bytes = gate, 0

    def hold_bytes(self, n: int) -> None:
        if self._gate.upload_bytes + n > self._gate.max_upload_bytes:
            raise Overloaded(
                "too many upload bytes are in flight; retry shortly",
                headers={"Retry-After": "1", "connection": "close"},
            )
        self._gate.upload_bytes += n
        self.bytes += n


class Admission:
    def __init__(self, capacity: int, max_upload_bytes: int) -> None:
        self.capacity, self.max_upload_bytes = capacity, max_upload_bytes
        self.in_flight = 0
        self.upload_bytes = 0

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self.capacity

    @asynccontextmanager
    async def admit(self):
        if self.saturated:
            raise Overloaded(
                f"{self.capacity} requests are already in progress; retry shortly",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            self.in_flight -= 1
            self.upload_bytes -= ticket.bytes
