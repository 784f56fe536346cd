"""The batch consumer acks a fetched batch's records (makes their offsets committable) only
once the state they changed is in Kafka, and holds at most ``IN_FLIGHT_MAX`` batches so."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.batch_consumer import IN_FLIGHT_MAX, BatchingConsumer


class Consumer:
    """The parts of ``BatchingConsumer`` its hand-over reads, on a consumer built without
    Faust's app (its methods under test are plain coroutines over these)."""

    def __init__(self) -> None:
        self.acked: list[Any] = []
        self.crashed: list[BaseException] = []

    def ack(self, message: Any) -> None:
        self.acked.append(message)

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


def _consumer() -> Any:
    consumer: Any = object.__new__(BatchingConsumer)
    fake = Consumer()
    consumer._in_flight = asyncio.Semaphore(IN_FLIGHT_MAX)
    consumer._acking = set()
    consumer._unacked_messages = set()
    consumer.ack = fake.ack
    consumer.crash = fake.crash
    consumer.fake = fake
    return consumer


def _sink(durable: asyncio.Future[None]) -> Any:
    async def sink(batch: list[Any]) -> tuple[list[Any], asyncio.Future[None]]:
        return batch, durable

    return sink


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_batch_is_not_acked_before_its_state_is_durable() -> None:
    async def scenario() -> list[Any]:
        consumer = _consumer()
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await consumer._hand_over(_sink(durable), ["m1", "m2"])
        await _settle()
        return list(consumer.fake.acked)

    assert asyncio.run(scenario()) == []


def test_a_batch_is_acked_once_its_state_is_durable() -> None:
    async def scenario() -> list[Any]:
        consumer = _consumer()
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await consumer._hand_over(_sink(durable), ["m1", "m2"])
        durable.set_result(None)
        await _settle()
        return list(consumer.fake.acked)

    assert asyncio.run(scenario()) == ["m1", "m2"]


def test_a_batch_whose_state_never_reached_kafka_is_not_acked_and_stops_the_worker() -> None:
    async def scenario() -> tuple[list[Any], int]:
        consumer = _consumer()
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await consumer._hand_over(_sink(durable), ["m1"])
        durable.set_exception(RuntimeError("flush failed"))
        await _settle()
        return list(consumer.fake.acked), len(consumer.fake.crashed)

    assert asyncio.run(scenario()) == ([], 1)


def test_no_more_than_the_in_flight_limit_of_batches_wait_for_durability() -> None:
    async def scenario() -> bool:
        consumer = _consumer()
        loop = asyncio.get_running_loop()
        pending = [loop.create_future() for _ in range(IN_FLIGHT_MAX + 1)]
        for i in range(IN_FLIGHT_MAX):
            await consumer._hand_over(_sink(pending[i]), [f"m{i}"])
        extra = asyncio.ensure_future(consumer._hand_over(_sink(pending[-1]), ["late"]))
        await _settle()
        blocked = not extra.done()
        pending[0].set_result(None)
        await asyncio.wait_for(extra, 1.0)
        return blocked

    assert asyncio.run(scenario())
