import numpy as np

from deva.eval.identity import count_id_switches, dominant_ids


def stack(*frames: list[list[int]]) -> np.ndarray:
    return np.array(frames, dtype=np.int32)


def test_dominant_id_is_the_majority_inside_the_object():
    gt = stack([[1, 1, 1, 0]], [[1, 1, 1, 0]], [[1, 1, 1, 0]]) > 0
    pred = stack([[4, 4, 7, 7]], [[0, 0, 0, 9]], [[7, 7, 0, 0]])
    # frame 0: 4 covers two pixels, 7 one; frame 1: nothing inside; frame 2: 7.
    assert dominant_ids(pred, gt) == [4, 0, 7]


def test_switches_count_changes_between_non_zero_ids_only():
    gt = np.ones((6, 1, 2), bool)
    pred = stack([[3, 3]], [[3, 3]], [[0, 0]], [[3, 3]], [[5, 5]], [[3, 3]])
    # 3 3 (miss) 3 5 3: the miss is not a switch; 3->5 and 5->3 are two.
    assert count_id_switches(pred, gt) == 2
    assert count_id_switches(np.full((4, 1, 2), 2), gt[:4]) == 0
