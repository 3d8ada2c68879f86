import pytest

from abanet_lib.ops.concurrency import CONTEXT_BYTES, measure_peak_bytes, workers_per_device


def test_workers_fill_the_device_up_to_the_reserve():
    # 80 GB * 0.85 = 68 GB usable; (3 GB + context) per worker
    assert workers_per_device([2e9, 3e9], 80e9) == int(68e9 // (3e9 + CONTEXT_BYTES))
    assert workers_per_device([2e9], 80e9, max_workers=4) == 4


def test_a_run_larger_than_the_device_still_gets_one_worker():
    assert workers_per_device([200e9], 80e9) == 1


@pytest.mark.parametrize("bad, match", [([], "empty"), ([float("nan")], "finite"), ([-1.0], "finite")])
def test_bad_measurements_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        workers_per_device(bad, 80e9)


def test_no_memory_statistics_on_cpu():
    assert measure_peak_bytes(lambda: None, "cpu") is None
