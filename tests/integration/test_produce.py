"""``limitsync produce`` against a real broker: what the broker refuses is reported, the rest
is produced (docs/contract.md "Bad input": nothing is lost without a clear error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from limitsync.producing import ProduceError, produce_lines
from tests.integration.live_harness import make_live_system

pytestmark = pytest.mark.integration

GOOD = (
    b'{"event_id":"e%d","type":"drawdown.booked","account_id":"A","schema_version":1,'
    b'"occurred_at":"2026-11-29T10:00:00.000Z","loan_id":"L","principal":1}'
)


def _settings(kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path) -> Settings:
    return make_live_system(kafka_bootstrap, redis_url, unique_id, tmp_path).settings


def test_a_record_too_large_for_the_broker_is_reported_and_the_rest_produced(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, redis_url, unique_id, tmp_path)
    huge = b'{"event_id":"big","account_id":"A","note":"' + b"x" * 1_500_000 + b'"}'
    with pytest.raises(ProduceError, match=r"refused 1 of 3 records \(first: line 2"):
        produce_lines(settings, [GOOD % 1, huge, GOOD % 2])  # one partition: key A


def test_a_record_stamped_far_ahead_is_produced_not_refused(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, redis_url, unique_id, tmp_path)
    ahead = GOOD.replace(b"2026-11-29T10:00:00.000Z", b"2099-12-31T23:00:00.000Z") % 3
    assert produce_lines(settings, [GOOD % 1, ahead, GOOD % 2]) == 3


def test_a_record_larger_than_a_batch_but_within_the_broker_limit_is_produced(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, redis_url, unique_id, tmp_path)
    large = b'{"event_id":"large","note":"' + b"x" * 700_000 + b'"}'
    assert produce_lines(settings, [GOOD % 1, large, GOOD % 2]) == 3
