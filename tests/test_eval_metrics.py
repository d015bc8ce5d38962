"""VPQ, STQ and HOTA/OWTA on tiny hand-worked videos (answers derived in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deva.errors import DevaError
from deva.eval.hota import ALPHAS, HotaFrame, combine, hota, hota_stats
from deva.eval.stq import mean_iou, panoptic_label, stq
from deva.eval.vpq import WHOLE_VIDEO, SegmentInfo, vpq

# --- VPQ ----------------------------------------------------------------------------------------
# Category 1 = person (thing), 2 = sky (stuff). Frames are 1 x W id maps stacked over time.
THINGS = {1: True, 2: False}
PERSON, SKY = SegmentInfo(1), SegmentInfo(2)


def video(*rows: list[int]) -> np.ndarray:
    """(T, 1, W) id maps, one list per frame."""
    return np.array(rows, dtype=np.int64)[:, None, :]


def test_vpq_perfect_prediction_is_one_for_every_window() -> None:
    gt = video([10, 10, 20, 20], [10, 20, 20, 20], [10, 10, 10, 20])
    result = vpq(gt, gt.copy(), {10: PERSON, 20: SKY}, {10: PERSON, 20: SKY}, THINGS)
    for k in result.windows:
        assert result.window(k).pq == 1.0
    assert result.vpq() == 1.0 and result.vpq(True) == 1.0 and result.vpq(False) == 1.0


def test_vpq_id_switch_costs_only_multi_frame_windows() -> None:
    # gt person 10 on two pixels for 4 frames; the prediction switches person id 1 -> 2 at frame 2.
    gt = video(*[[10, 10, 20, 20]] * 4)
    pred = video([1, 1, 5, 5], [1, 1, 5, 5], [2, 2, 5, 5], [2, 2, 5, 5])
    result = vpq(
        gt, pred, {10: PERSON, 20: SKY}, {1: PERSON, 2: PERSON, 5: SKY}, THINGS, (1, 2, 999)
    )
    # k=1: every frame is perfect.
    assert result.window(1).pq == 1.0
    # k=2, starts 0,1,2: windows 0 and 2 are TPs (IoU 1); window 1 holds 2 px of id 1 and 2 px of
    # id 2 against a 4-px tube: IoU 0.5 each, not > 0.5 -> 1 FN, 2 FP.
    # person PQ = 2 / (2 + 2/2 + 1/2) = 4/7; sky = 1; mean = (4/7 + 1) / 2.
    assert result.window(2, True).pq == pytest.approx(4 / 7)
    assert result.window(2).pq == pytest.approx((4 / 7 + 1) / 2)
    # k=∞: one 8-px tube vs two 4-px predictions, IoU 0.5 each -> person PQ 0, mean 0.5.
    assert result.window(WHOLE_VIDEO).pq == pytest.approx(0.5)
    # Summary: mean(VPQ^∞, mean(VPQ^1, VPQ^2)).
    assert result.vpq() == pytest.approx((0.5 + (1 + (4 / 7 + 1) / 2) / 2) / 2)


def test_vpq_summaries_and_short_video_conventions() -> None:
    """Video A: 8 frames predicted perfectly; video B: 2 frames whose person is predicted as
    VOID (a FN per window), sky perfect. Pooled person PQ = TP / (TP + FN / 2) (IoU 1), sky 1,
    VPQ^k = (person + 1) / 2. A has 9 - k windows (k <= 8); B has 3 - k (k <= 2), and for a
    longer k either one whole-clip window (DEVA: 1 FN) or none (VIPSeg toolkit: skipped).
    person: k=1 8/(8+1), k=2 7/(7+0.5), k=4 5/(5+0.5) or 1, k=6 3/(3+0.5) or 1, k=8 1/(1+0.5)
    or 1; k=10 (A is short too) 1/(1+0.5) or nothing; ∞ 1/(1+0.5)."""
    gt_a = video(*[[10, 10, 20, 20]] * 8)
    pred_a = video(*[[1, 1, 5, 5]] * 8)
    gt_b = video(*[[10, 10, 20, 20]] * 2)
    pred_b = video(*[[0, 0, 5, 5]] * 2)
    gt_segs, pred_segs = {10: PERSON, 20: SKY}, {1: PERSON, 5: SKY}
    windows = (1, 2, 4, 6, 8, 10, WHOLE_VIDEO)
    pooled = vpq(gt_a, pred_a, gt_segs, pred_segs, THINGS, windows) + vpq(
        gt_b, pred_b, gt_segs, {5: SKY}, THINGS, windows
    )
    person_whole = {1: 8 / 9, 2: 14 / 15, 4: 10 / 11, 6: 6 / 7, 8: 2 / 3, 10: 2 / 3}
    person_skip = {1: 8 / 9, 2: 14 / 15, 4: 1.0, 6: 1.0, 8: 1.0}
    for k, person in person_whole.items():
        assert pooled.window(k, True).pq == pytest.approx(person)
        assert pooled.window(k).pq == pytest.approx((person + 1) / 2)
    for k, person in person_skip.items():
        assert pooled.window(k, True, short_videos="skip").pq == pytest.approx(person)
    assert math.isnan(pooled.window(10, short_videos="skip").pq)  # no video has 10 frames
    assert pooled.window(WHOLE_VIDEO, short_videos="skip").pq == pytest.approx((2 / 3 + 1) / 2)
    deva = ((2 / 3 + 1) / 2 + np.mean([(p + 1) / 2 for p in person_whole.values()])) / 2
    vipseg = np.mean([(p + 1) / 2 for p in person_skip.values()])
    assert pooled.summary("deva") == pytest.approx(deva)
    assert pooled.summary() == pytest.approx(deva)
    assert pooled.summary("vipseg") == pytest.approx(vipseg)
    assert pooled.summary("vipseg", isthing=True) == pytest.approx(
        np.mean(list(person_skip.values()))
    )
    assert pooled.summary("vipseg", isthing=False) == 1.0
    with pytest.raises(DevaError, match="summary"):
        pooled.summary("kitti")


def test_vpq_missed_object() -> None:
    # The person is predicted as VOID: one FN for the person, sky perfect (its union leaves out
    # nothing, sky IoU 1). All = mean(0, 1); Things = 0; Stuff = 1.
    gt = video([10, 10, 20, 20])
    pred = video([0, 0, 5, 5])
    result = vpq(gt, pred, {10: PERSON, 20: SKY}, {5: SKY}, THINGS, (1,))
    assert result.window(1).pq == 0.5
    assert result.window(1, True).pq == 0.0
    assert result.window(1, False).pq == 1.0


def test_vpq_stuff_class_split_in_two() -> None:
    # Sky over 4 px predicted as two sky ids of 3 px and 1 px: IoU 3/4 -> TP (0.75); the 1-px id
    # is a FP. PQ = 0.75 / (1 + 1/2) = 0.5. A 2 + 2 split gives IoU 0.5 twice: 1 FN, 2 FP, PQ 0.
    gt = video([20, 20, 20, 20])
    segs = {5: SKY, 6: SKY}
    assert vpq(gt, video([5, 5, 5, 6]), {20: SKY}, segs, THINGS, (1,)).window(1).pq == 0.5
    assert vpq(gt, video([5, 5, 6, 6]), {20: SKY}, segs, THINGS, (1,)).window(1).pq == 0.0


def test_vpq_track_that_starts_late() -> None:
    # Person present in 4 frames, predicted only from frame 2 (VOID before).
    gt = video(*[[10, 10, 20, 20]] * 4)
    pred = video([0, 0, 5, 5], [0, 0, 5, 5], [1, 1, 5, 5], [1, 1, 5, 5])
    result = vpq(gt, pred, {10: PERSON, 20: SKY}, {1: PERSON, 5: SKY}, THINGS, (1, 999))
    # k=1: 2 FN (frames 0, 1) + 2 TP (IoU 1): person PQ = 2 / (2 + 1) = 2/3.
    assert result.window(1, True).pq == pytest.approx(2 / 3)
    # k=∞: tube 8 px, prediction 4 px inside it: IoU 0.5 -> 1 FN + 1 FP: person PQ 0.
    assert result.window(WHOLE_VIDEO, True).pq == 0.0


def test_vpq_false_positive_and_void_handling() -> None:
    # gt: sky on 6 px, VOID on the last 2. Prediction: sky on 5 px, a person on the 6th (on sky):
    # sky IoU 5/6 -> TP; the person is an unmatched FP (0 of its pixels on VOID).
    # sky PQ = (5/6) / 1 (no sky FP/FN); person PQ = 0 / (0 + 1/2) = 0; All = 5/12.
    gt = video([20, 20, 20, 20, 20, 20, 0, 0])
    pred = video([5, 5, 5, 5, 5, 7, 0, 0])
    result = vpq(gt, pred, {20: SKY}, {5: SKY, 7: PERSON}, THINGS, (1,))
    assert result.window(1, False).pq == pytest.approx(5 / 6)
    assert result.window(1, True).pq == 0.0
    assert result.window(1).pq == pytest.approx(5 / 12)
    # A person lying entirely on VOID is no FP (person not even counted as a seen category), and
    # sky predicted over the VOID pixels keeps IoU 1: the union leaves predicted VOID pixels out.
    pred = video([5, 5, 5, 5, 5, 5, 7, 7])
    result = vpq(gt, pred, {20: SKY}, {5: SKY, 7: PERSON}, THINGS, (1,))
    assert result.window(1).pq == 1.0 and result.window(1).n == 1
    assert math.isnan(result.window(1, True).pq)
    pred = video([5, 5, 5, 5, 5, 5, 5, 5])
    assert vpq(gt, pred, {20: SKY}, {5: SKY}, THINGS, (1,)).window(1).pq == 1.0


def test_vpq_crowd_region_absorbs_predictions_of_its_class() -> None:
    # gt: a crowd of people (id 30, iscrowd) on 4 px + sky. A predicted person on the crowd is
    # neither TP nor FP; the crowd is no FN. Only sky is scored.
    gt = video([30, 30, 30, 30, 20, 20])
    pred = video([1, 1, 1, 0, 5, 5])
    result = vpq(gt, pred, {30: SegmentInfo(1, iscrowd=True), 20: SKY}, {1: PERSON, 5: SKY}, THINGS)
    assert result.window(1).pq == 1.0 and result.window(1).n == 1


def test_vpq_rejects_unknown_ids_and_categories() -> None:
    gt = video([20, 20])
    with pytest.raises(DevaError, match="predicted id 9"):
        vpq(gt, video([9, 9]), {20: SKY}, {}, THINGS)
    with pytest.raises(DevaError, match="unknown category_id 7"):
        vpq(gt, video([5, 5]), {20: SKY}, {5: SegmentInfo(7)}, THINGS)
    with pytest.raises(DevaError, match="equal"):
        vpq(gt, video([5, 5, 5]), {20: SKY}, {5: SKY}, THINGS)


# --- STQ ----------------------------------------------------------------------------------------
# Classes: 0 = road (stuff), 1 = person (thing), 2 = sky (stuff); label = class << 16 | instance.
ROAD, IGNORE = panoptic_label(0, 0), panoptic_label(255, 0)


def person(instance: int) -> int:
    return int(panoptic_label(1, instance))


def run_stq(gt: np.ndarray, pred: np.ndarray):
    return stq(gt, pred, num_classes=3, things=[1])


def test_stq_perfect_prediction_is_one() -> None:
    gt = video([person(1), person(1), ROAD, ROAD], [person(1), person(2), ROAD, ROAD])
    result = run_stq(gt, gt.copy())
    assert (result.stq, result.aq, result.sq) == (1.0, 1.0, 1.0)


def test_stq_id_switch_halves_association() -> None:
    # gt tube: 4 px over 2 frames; predictions 1 (frame 0) and 2 (frame 1), 2 px each:
    # TPA 2, IoU 2 / (4 + 2 - 2) = 0.5 each -> AQ = (2·0.5 + 2·0.5) / 4 = 0.5. SQ = 1.
    gt = video([person(1), person(1), ROAD, ROAD], [person(1), person(1), ROAD, ROAD])
    pred = video([person(1), person(1), ROAD, ROAD], [person(2), person(2), ROAD, ROAD])
    result = run_stq(gt, pred)
    assert result.aq == pytest.approx(0.5)
    assert result.sq == 1.0
    assert result.stq == pytest.approx(math.sqrt(0.5))


def test_stq_missed_object_left_unpredicted() -> None:
    # The person (2 px) is predicted as the ignore class: no predicted tube -> AQ 0. SQ: road
    # IoU 1, person IoU 0, and (deeplab2) the ignore column counts as one more class of IoU 0:
    # SQ = 1/3.
    gt = video([person(1), person(1), ROAD, ROAD])
    pred = video([IGNORE, IGNORE, ROAD, ROAD])
    result = run_stq(gt, pred)
    assert result.aq == 0.0
    assert result.sq == pytest.approx(1 / 3)
    assert result.stq == 0.0


def test_stq_ignores_stuff_instance_ids() -> None:
    # Road predicted as two "instances": stuff is only scored semantically, so nothing changes.
    gt = video([person(1), ROAD, ROAD, ROAD])
    pred = video([person(1), ROAD, panoptic_label(0, 7), panoptic_label(0, 7)])
    assert run_stq(gt, pred).stq == 1.0


def test_stq_track_that_starts_late() -> None:
    # Person 2 px in each of 4 frames (tube 8 px); predicted only in frames 2, 3 (4 px), as road
    # before. AQ = 4 · (4 / (8 + 4 - 4)) / 8 = 0.25. SQ: person 4 / 8 = 0.5; road gt 8 px,
    # predicted 12 px, overlap 8 -> 8/12. SQ = (0.5 + 2/3) / 2 = 7/12.
    gt = video(*[[person(1), person(1), ROAD, ROAD]] * 4)
    pred = video(
        *[[ROAD, ROAD, ROAD, ROAD]] * 2,
        *[[person(3), person(3), ROAD, ROAD]] * 2,
    )
    result = run_stq(gt, pred)
    assert result.aq == pytest.approx(0.25)
    assert result.sq == pytest.approx(7 / 12)
    assert result.stq == pytest.approx(math.sqrt(0.25 * 7 / 12))


def test_stq_false_positive_track_costs_only_segmentation() -> None:
    # An extra predicted person on a road pixel does not overlap any gt tube: AQ stays 1.
    # SQ: person 1 / (1 + 2 - 1) = 0.5; road 2 / 3. SQ = 7/12.
    gt = video([person(1), ROAD, ROAD, ROAD])
    pred = video([person(1), ROAD, ROAD, person(2)])
    result = run_stq(gt, pred)
    assert result.aq == 1.0
    assert result.sq == pytest.approx(7 / 12)


def test_stq_crowd_is_left_out_of_association() -> None:
    # Instance 0 of a thing class is crowd: its pixels are in no tube, for gt and prediction.
    gt = video([person(0), person(0), person(1), ROAD])
    pred = video([person(4), person(5), person(1), ROAD])
    assert run_stq(gt, pred).aq == 1.0


def test_mean_iou_drops_gt_ignore_rows() -> None:
    # 2 classes + ignore; gt-ignore pixels predicted as class 0 are not FPs.
    confusion = np.array([[3, 0, 0], [0, 2, 0], [5, 0, 0]])
    assert mean_iou(confusion) == 1.0


def test_stq_rejects_out_of_range_classes() -> None:
    with pytest.raises(DevaError, match="class 9"):
        run_stq(video([ROAD]), video([panoptic_label(9, 0)]))


# --- HOTA / OWTA --------------------------------------------------------------------------------


def test_hota_perfect_tracking_is_one() -> None:
    gt = video([1, 1, 0, 2], [1, 0, 2, 2], [0, 1, 1, 2])
    stats = hota(gt, gt.copy())
    for field in ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "OWTA", "LocA"):
        assert stats.score(field) == 1.0


def test_hota_id_switch_halves_association_only() -> None:
    # One gt track, 4 frames; predicted id 1 for frames 0-1 and id 2 for frames 2-3, exact masks.
    # Detection is perfect (DetA 1). Each TP with id 1: TPA 2, FNA 2, FPA 0 -> 1/2; same for id 2:
    # AssA = 0.5, AssRe = 0.5, AssPr = 1; HOTA = OWTA = sqrt(0.5).
    gt = video(*[[1, 1, 0, 0]] * 4)
    pred = video([1, 1, 0, 0], [1, 1, 0, 0], [2, 2, 0, 0], [2, 2, 0, 0])
    stats = hota(gt, pred)
    assert stats.score("DetA") == 1.0
    assert stats.score("AssA") == pytest.approx(0.5)
    assert stats.score("AssRe") == pytest.approx(0.5)
    assert stats.score("AssPr") == 1.0
    assert stats.score("HOTA") == pytest.approx(math.sqrt(0.5))
    assert stats.score("OWTA") == pytest.approx(math.sqrt(0.5))


@pytest.mark.parametrize(("frames_a", "frames_b", "ass_a"), [(3, 3, 1 / 2), (4, 2, 5 / 9)])
def test_hota_one_object_tracked_as_two_ids_known_answer(
    frames_a: int, frames_b: int, ass_a: float
) -> None:
    # One gt track g over T = a + b frames, predicted with perfect masks as track A in the first
    # a frames and track B in the last b (Luiten et al. 2020). Every frame has one gt and one
    # predicted detection with IoU 1, so for every alpha in 0.05..0.95 the same counts hold:
    #   Detection: TP = T, FN = FP = 0 -> DetA = DetRe = DetPr = T / T = 1.
    #   Association of a TP c = (g, A): TPA(c) = a (frames where g is matched to A),
    #     FNA(c) = |g| - TPA = T - a = b (g matched elsewhere), FPA(c) = |A| - TPA = 0
    #     -> A(c) = a / (a + b + 0) = a / T; likewise each of the b TPs with B scores b / T.
    #   AssA = (1 / TP) sum_c A(c) = (a * a/T + b * b/T) / T = (a² + b²) / T²
    #     (a = b: 1/2; a = 4, b = 2: 20/36 = 5/9); AssRe = the same (FNA only);
    #     AssPr = TPA / (TPA + FPA) = 1.
    #   HOTA = sqrt(DetA * AssA) = sqrt(AssA); OWTA = sqrt(DetRe * AssA) = sqrt(AssA); LocA = 1.
    total = frames_a + frames_b
    obj = np.zeros((total, 3, 4), np.int64)
    obj[:, 1:, 1:3] = 1  # a 2 x 2 object on a 3 x 4 frame, in every frame
    gt = obj * 7
    pred = obj * np.where(np.arange(total) < frames_a, 3, 5)[:, None, None]  # A = 3, B = 5
    stats = hota(gt, pred)
    expected = {
        "DetA": 1.0,
        "DetRe": 1.0,
        "DetPr": 1.0,
        "AssA": ass_a,
        "AssRe": ass_a,
        "AssPr": 1.0,
        "LocA": 1.0,
        "HOTA": math.sqrt(ass_a),
        "OWTA": math.sqrt(ass_a),
    }
    for field, value in expected.items():
        # the same at every threshold, hence also the reported mean over the 19
        np.testing.assert_allclose(stats.per_alpha(field), value, rtol=1e-12, err_msg=field)
        assert stats.score(field) == pytest.approx(value), field


def test_hota_missed_object() -> None:
    # Two gt tracks over 2 frames, only one predicted: TP 2, FN 2 -> DetA = DetRe = 0.5, AssA 1.
    gt = video([1, 1, 2, 2], [1, 1, 2, 2])
    pred = video([1, 1, 0, 0], [1, 1, 0, 0])
    stats = hota(gt, pred)
    assert stats.score("DetA") == 0.5 and stats.score("DetRe") == 0.5
    assert stats.score("AssA") == 1.0
    assert stats.score("HOTA") == pytest.approx(math.sqrt(0.5))
    assert stats.score("OWTA") == pytest.approx(math.sqrt(0.5))


def test_owta_ignores_false_positives_hota_does_not() -> None:
    # An extra predicted track in both frames: TP 2, FP 2 -> DetA 0.5 but DetRe 1.
    gt = video([1, 1, 0, 0], [1, 1, 0, 0])
    pred = video([1, 1, 0, 9], [1, 1, 0, 9])
    stats = hota(gt, pred)
    assert stats.score("HOTA") == pytest.approx(math.sqrt(0.5))
    assert stats.score("OWTA") == 1.0


def test_hota_track_that_starts_late() -> None:
    # gt track over 4 frames, predicted from frame 2: TP 2, FN 2 -> DetA 0.5, DetRe 0.5.
    # AssA: TPA 2, FNA 2, FPA 0 -> 0.5. HOTA = sqrt(0.25) = 0.5 = OWTA.
    gt = video(*[[1, 1, 0, 0]] * 4)
    pred = video([0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0])
    stats = hota(gt, pred)
    assert stats.score("AssA") == pytest.approx(0.5)
    assert stats.score("HOTA") == pytest.approx(0.5)
    assert stats.score("OWTA") == pytest.approx(0.5)


def test_hota_averages_over_thresholds() -> None:
    # IoU 2/3 (gt 3 px, prediction 2 of them): a TP for the 13 thresholds 0.05..0.65, a FN + FP
    # for the 6 from 0.70 up. HOTA per threshold 1 or 0 -> mean 13/19.
    stats = hota(video([1, 1, 1, 0]), video([1, 1, 0, 0]))
    assert len(ALPHAS) == 19
    assert stats.score("HOTA") == pytest.approx(13 / 19)
    assert stats.per_alpha("LocA")[0] == pytest.approx(2 / 3)


def test_hota_sequences_combine_by_counts() -> None:
    # Sequence A perfect (2 dets), sequence B missed entirely (2 dets): TP 2, FN 2 in total,
    # AssA weighted by TP = 1 -> combined HOTA sqrt(0.5), not the mean of 1 and 0.
    a = hota(video([1, 0], [1, 0]), video([1, 0], [1, 0]))
    b = hota(video([1, 0], [1, 0]), video([0, 0], [0, 0]))
    assert b.score("HOTA") == 0.0
    assert combine([a, b]).score("HOTA") == pytest.approx(math.sqrt(0.5))


def test_hota_frames_are_validated() -> None:
    with pytest.raises(DevaError, match="does not match"):
        hota_stats([HotaFrame(np.array([1]), np.array([1, 2]), np.zeros((1, 1)))])
    with pytest.raises(DevaError, match="appears twice"):
        hota_stats([HotaFrame(np.array([1, 1]), np.array([1]), np.zeros((2, 1)))])
