import pytest

from vitssl.study import estimate
from vitssl.study.estimate import QUICK_S, TIMED_BATCH, Rates


def _timed(monkeypatch):
    """Steps that return their own duration: seconds = fixed + per_image * batch."""
    seen = []

    def seconds_per_call(fn, calls=2):
        batch, seconds = fn()
        seen.append(batch)
        return seconds

    monkeypatch.setattr(estimate, "_seconds_per_call", seconds_per_call)
    return seen


def step(fixed, per_image):
    return lambda b: (lambda: (b, fixed + per_image * b))


def test_a_quick_step_is_timed_at_the_configured_batch(monkeypatch):
    """A small model's step has fixed costs: timed on fewer images, it would look slower per image."""
    seen = _timed(monkeypatch)
    per = Rates()._per_image(step(0.5, 0.01), 128)
    assert seen == [TIMED_BATCH, 128]
    assert per == pytest.approx((0.5 + 0.01 * 128) / 128)


def test_a_slow_step_is_timed_on_a_small_batch_only(monkeypatch):
    seen = _timed(monkeypatch)
    per = Rates()._per_image(step(0.0, QUICK_S / 100), 128)  # 128 images would take 2.56 QUICK_S
    assert seen == [TIMED_BATCH]
    assert per == pytest.approx(QUICK_S / 100)


def test_a_result_measurement_times_the_configured_batch(monkeypatch):
    seen = _timed(monkeypatch)
    Rates(max_batch=None)._per_image(step(0.0, 1.0), 128)
    assert seen == [128]
