"""Pure parts of the task runners, worked by hand: stuff merging, the 20-id limit, associated
consensus sampling / weights / keyframe / combination, scores.csv parsing, soft memorize."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deva.errors import DevaError
from deva.fusion.associated import (
    choose_keyframe,
    combine,
    consensus_weights,
    probabilities,
    sample_indices,
)
from deva.propagation.flow import FlowPropagator
from deva.tasks.referring import read_scores
from deva.tasks.unsup_davis17 import keep_first_ids
from deva.tasks.vipseg import PanopticSegment, merge_stuff, vipseg_categories

SKY, ROAD, CAR, PERSON = 28, 18, 48, 60  # two stuff and two thing categories


def test_vipseg_table_has_58_things_and_66_stuff():
    table = vipseg_categories()
    assert sorted(table) == list(range(124))
    assert sum(c.is_thing for c in table.values()) == 58
    assert table[SKY].name == "sky" and not table[SKY].is_thing
    assert table[PERSON].name == "person" and table[PERSON].is_thing


def test_stuff_split_in_two_objects_gets_one_id():
    # objects 3 and 8 are both sky; 5 is road. All sky shares the first sky object's id.
    frames = [[(3, SKY), (5, ROAD)], [(8, SKY), (3, SKY), (5, ROAD)], [(8, SKY)]]
    merged = merge_stuff(frames)
    assert [m for m, _ in merged] == [{3: 3, 5: 5}, {8: 3, 3: 3, 5: 5}, {8: 3}]
    assert merged[1][1] == [PanopticSegment(3, SKY, False), PanopticSegment(5, ROAD, False)]


def test_thing_changing_category_gets_a_new_id_and_keeps_it():
    # object 4: car, person, car, person. ids seen in the video: 4 and 9 -> fresh ids from 10.
    frames = [[(4, CAR), (9, PERSON)], [(4, PERSON)], [(4, CAR)], [(4, PERSON), (9, PERSON)]]
    mappings = [m for m, _ in merge_stuff(frames)]
    assert mappings == [{4: 4, 9: 9}, {4: 10}, {4: 4}, {4: 10, 9: 9}]


def test_stuff_category_seen_first_on_a_reused_object_gets_a_fresh_id():
    # object 2 is sky, then (category changed) road: road's first object id 2 is taken.
    merged = merge_stuff([[(2, SKY)], [(2, ROAD), (7, SKY)]])
    assert [m for m, _ in merged] == [{2: 2}, {2: 8, 7: 2}]


def test_keep_first_ids_deduplicates_across_frames():
    # Frame 0: 1 (100 px) > 2 (50); frame 1: 1 again (duplicate, skipped), 3 (80); frame 2: 4.
    areas = [{2: 50, 1: 100}, {1: 120, 3: 80}, {4: 10, 5: 5}]
    assert keep_first_ids(areas, max_ids=3) == {1: 1, 2: 2, 3: 3}
    assert keep_first_ids(areas, max_ids=20) == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}


def test_keep_first_ids_fills_twenty_distinct_objects_when_objects_repeat():
    # 30 objects, each in every frame: official DEVA would fill its list with duplicates of
    # frame 0's objects; here exactly the 20 largest distinct objects survive.
    frame = {object_id: 1000 - object_id for object_id in range(1, 31)}
    kept = keep_first_ids([frame] * 5)
    assert kept == {object_id: object_id for object_id in range(1, 21)}


def test_sample_indices_by_hand():
    assert sample_indices(100, 5) == [10, 30, 50, 70, 90]
    assert sample_indices(10, 3) == [1, 4, 7]  # i*10//3 + 10//6
    assert sample_indices(3, 10) == [0, 1, 2]  # n capped at T
    with pytest.raises(DevaError):
        sample_indices(0, 5)


def test_weights_softmax_of_twice_the_score_or_uniform():
    np.testing.assert_allclose(consensus_weights(None, 4), [0.25] * 4)
    weights = consensus_weights([0.0, 0.5], 2)  # softmax([0, 1])
    np.testing.assert_allclose(weights, [1 / (1 + math.e), math.e / (1 + math.e)])


def test_keyframe_by_score_then_by_confident_fraction():
    masks = [np.full((2, 2), 0.9), np.array([[0.9, 0.9], [0.85, 0.1]]), np.zeros((2, 2))]
    assert choose_keyframe(masks, [0.2, 0.7, 0.7]) == 1  # the first of the best scores
    assert choose_keyframe(masks, None) == 0  # 4/4 pixels above 0.8 beats 3/4


def test_combine_and_probabilities_by_hand():
    key = np.array([[[1.0, 0.0]]])
    aligned = np.array([[[0.5, 0.5]]])
    consensus = combine([key, aligned], np.array([0.75, 0.25]))
    np.testing.assert_allclose(consensus, [[[0.875, 0.125]]])
    probs = probabilities(consensus)  # one object: background = 1 - p
    np.testing.assert_allclose(probs, [[[0.125, 0.875]], [[0.875, 0.125]]], atol=1e-6)


def test_read_scores_header_extension_and_errors(tmp_path):
    good = tmp_path / "scores.csv"
    good.write_text("frame,object,score\n00000.png,0,0.5\n00001,1, 0.25\n\n")
    assert read_scores(good) == {("00000", "0"): 0.5, ("00001", "1"): 0.25}
    bad = tmp_path / "bad.csv"
    bad.write_text("00000.png,0,0.5\n00001.png,0\n")
    with pytest.raises(DevaError, match=r"bad\.csv: line 2"):
        read_scores(bad)
    bad.write_text("00000.png,0,high\n")
    with pytest.raises(DevaError, match=r"bad\.csv: line 1: score 'high'"):
        read_scores(bad)


def test_flow_propagator_keeps_soft_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    soft = np.zeros((1, 64, 80), np.float32)
    soft[0, 16:48, 20:60] = 0.3
    propagator = FlowPropagator()
    propagator.propagate(image)
    propagator.memorize(image, soft, [1])
    probs = propagator.propagate(image)  # same image: zero flow, the soft value stays
    assert abs(float(probs[1, 32, 40]) - 0.3) < 0.02
    propagator.memorize(image, soft > 0, [1])  # bool masks stay hard
    assert float(propagator.propagate(image)[1, 32, 40]) > 0.98
