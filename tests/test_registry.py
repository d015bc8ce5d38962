"""Object lifecycle and meta-info votes (spec §3.6 steps 3-5, §3.7)."""

import pytest

from deva.fusion.registry import ObjectRegistry, mean_score, vote_category
from deva.types import SegmentInfo


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([], None),
        ([None, None], None),
        ([3, 3, 1], 3),
        ([5, 2, 5, 2], 2),  # tie -> smallest id
        ([None, 7, None], 7),  # nulls do not vote
    ],
)
def test_vote_category(votes, expected):
    assert vote_category(votes) == expected


def test_mean_score_ignores_nulls():
    assert mean_score([0.5, None, 1.0]) == pytest.approx(0.75)
    assert mean_score([None]) is None


def test_ids_are_sequential_and_never_reused():
    registry = ObjectRegistry()
    first = registry.register(SegmentInfo(40))
    second = registry.register(SegmentInfo(41))
    assert (first, second) == (1, 2)
    registry.miss(first, still_visible=False, incremental=False)
    assert registry.remove_expired(max_missed=0) == [first]
    assert registry.register(SegmentInfo(40)) == 3
    assert registry.ids == [2, 3]


def test_deleted_after_more_than_max_missed():
    registry = ObjectRegistry()
    object_id = registry.register(SegmentInfo(1))
    for _ in range(5):
        registry.miss(object_id, still_visible=True, incremental=False)
        assert registry.remove_expired(max_missed=5) == []
    registry.miss(object_id, still_visible=True, incremental=False)
    assert registry.remove_expired(max_missed=5) == [object_id]


def test_confirm_resets_missed_and_collects_votes():
    registry = ObjectRegistry()
    object_id = registry.register(SegmentInfo(1, category_id=4, score=0.2))
    registry.miss(object_id, still_visible=False, incremental=False)
    registry[object_id].confirm(SegmentInfo(9, category_id=4, score=0.6))
    registry[object_id].confirm(SegmentInfo(9, category_id=7, score=None))
    obj = registry[object_id]
    assert obj.missed == 0 and obj.category_id == 4 and obj.score == pytest.approx(0.4)


def test_incremental_miss_only_counts_when_propagation_lost_the_object():
    registry = ObjectRegistry()
    object_id = registry.register(SegmentInfo(1))
    registry.miss(object_id, still_visible=True, incremental=True)
    assert registry[object_id].missed == 0
    registry.miss(object_id, still_visible=False, incremental=True)
    assert registry[object_id].missed == 1
