"""A started hub's heap: the start-up objects set aside, young objects collected in bulk."""

import gc

from hub.heap import YOUNG_THRESHOLD, settle_start_up_heap


def test_a_started_hub_freezes_its_start_up_heap_and_collects_young_objects_less_often() -> None:
    frozen = settle_start_up_heap()

    assert frozen > 0
    assert gc.get_freeze_count() >= frozen
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700  # 700: Python's own
