"""The input consumer, with the seek that ends Faust's table recovery made lossless.

Found by the crash test: a worker killed mid-stream and restarted with a backlog lost events,
on about half the runs, whose offsets were nonetheless committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["SCHEME", "SeekSafeConsumer", "register"]

SCHEME = "limitsync-kafka"
FETCH_LOOP_PARK_TIMEOUT_S = 10.0


class SeekSafeConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with the seek that ends table recovery made lossless.

    faust-streaming 0.15.3 ends recovery (``Recovery.on_recovery_completed``) by resuming the
    input partitions and seeking them to the committed offsets while the consumer's flow is
    still on (recovery turned it on to read the changelogs), and then calls
    ``app.flow_control.resume()``, which clears every agent's input queue. Records the fetch
    loop hands over during the seek are dropped there unacked; the loop then carries on with
    the batch fetched before the seek, so the re-fetched copies fall below its read offsets
    and are skipped, and the dropped offsets are committed as a "gap" (faust-streaming issue
    #596). Here the flow stops for the seek, once the fetch loop has let go of that batch, so
    nothing is handed over until recovery turns the flow back on after the clear; fetching
    then starts again at the committed offsets. Partitions without a committed offset, which
    aiokafka leaves where they are, are rewound to the beginning (``auto_offset_reset``
    earliest), since the records fetched past it were let go. Records handed over twice
    are harmless: the core drops a redelivered event by its id.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetch_loop_started = False
        self._fetch_loop_parked = False

    async def _wait_next_records(self, timeout: float) -> Any:
        # Faust's fetch loop calls this between batches. Parked means: waiting for the flow
        # to resume, holding no record; the stock method then fetches at the current (sought)
        # positions. The flag is down again before that fetch starts.
        self._fetch_loop_started = True
        while not self.flow_active:
            self._fetch_loop_parked = True
            try:
                await self.wait(self.can_resume_flow)  # type: ignore[arg-type]  # as Faust does
            finally:
                self._fetch_loop_parked = False
            if self.should_stop:
                break
        return await super()._wait_next_records(timeout)

    async def perform_seek(self) -> None:
        if not self.flow_active:
            await super().perform_seek()
            return
        self.stop_flow()  # recovery turns it back on after its queue clear
        await self._fetch_loop_to_park()
        await super().perform_seek()
        await self._rewind_uncommitted()

    async def _fetch_loop_to_park(self) -> None:
        """Wait until the fetch loop holds no record fetched before the seek."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FETCH_LOOP_PARK_TIMEOUT_S
        while self._fetch_loop_started and not self._fetch_loop_parked:
            if loop.time() >= deadline:
                raise RuntimeError(f"fetch loop not parked in {FETCH_LOOP_PARK_TIMEOUT_S} s")
            await asyncio.sleep(0.001)

    async def _rewind_uncommitted(self) -> None:
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return
        uncommitted = [
            self._new_topicpartition(tp.topic, tp.partition)  # the client's own type
            for tp in self.assignment()
            if not self._is_changelog_tp(tp) and not self._read_offset[tp]
        ]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)


class _SeekSafeTransport(faust_aiokafka.Transport):
    Consumer = SeekSafeConsumer


def register() -> None:
    """Make ``limitsync-kafka://host:port`` a broker URL Faust understands."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:_SeekSafeTransport"
