"""DAVIS J&F evaluator: metrics on hand-computed masks, matching protocols, the dataset runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DAVIS as DAVIS16
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.errors import DevaError
from deva.eval.davis import (
    boundary_map,
    boundary_measure,
    evaluate_davis,
    evaluate_sequence,
    gt_objects,
    region_similarity,
    tolerance_radius,
)
from deva.io.masks import write_id_png


def square(top: int, left: int, size: int = 4, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


# --- metrics ---------------------------------------------------------------------------------


def test_j_of_diagonally_shifted_square() -> None:
    # 4x4 squares at (2,2) and (3,3): overlap 3x3 = 9, union 16 + 16 - 9 = 23.
    gt = square(2, 2, shape=(12, 12))
    pred = square(3, 3, shape=(12, 12))
    assert region_similarity(pred, gt) == pytest.approx(9 / 23)


def test_tolerance_is_a_disk_not_a_square() -> None:
    # Same squares, radius ceil(0.008 * 17.0) = 1: the disk is a plus, no diagonal neighbours.
    # Outlines: gt rows/cols 1..5, pred rows/cols 2..6. Every pred outline pixel has a gt outline
    # pixel straight above, left or right except the corner (6,6), whose nearest is (5,5)
    # diagonally; likewise gt's (1,1). P = R = 15/16, F = 0.9375 (a 3x3 square would give 1).
    gt = square(2, 2, shape=(12, 12))
    pred = square(3, 3, shape=(12, 12))
    assert boundary_measure(pred, gt) == pytest.approx(15 / 16)


def test_identical_masks_score_one() -> None:
    mask = square(2, 2)
    assert region_similarity(mask, mask) == 1.0
    assert boundary_measure(mask, mask) == 1.0


def test_empty_vs_empty_scores_one() -> None:
    empty = np.zeros((10, 10), dtype=bool)
    assert region_similarity(empty, empty) == 1.0
    assert boundary_measure(empty, empty) == 1.0  # no boundary on either side: P = R = 1


def test_empty_vs_nonempty_scores_zero() -> None:
    empty = np.zeros((10, 10), dtype=bool)
    mask = square(2, 2)
    assert region_similarity(empty, mask) == 0.0
    assert boundary_measure(empty, mask) == 0.0  # no predicted boundary: P = 1, R = 0
    assert boundary_measure(mask, empty) == 0.0  # no gt boundary: P = 0, R = 1


def test_boundary_map_of_square_is_outline_offset_up_left() -> None:
    # Pixel is boundary if it differs from its right, bottom or bottom-right neighbour: for the
    # square rows/cols 2..5 that is the outline of rows/cols 1..5 (5x5 ring = 16 pixels).
    expected = np.zeros((10, 10), dtype=bool)
    expected[1:6, 1:6] = True
    expected[2:5, 2:5] = False
    np.testing.assert_array_equal(boundary_map(square(2, 2)), expected)


def test_boundary_map_last_row_and_column_rule() -> None:
    # 2x2 block in the bottom-right corner of a 4x4 image. The last row only compares with the
    # right neighbour, the last column only with the one below, the corner is never boundary:
    # so (2,3), (3,2), (3,3) are not boundary; (1,1..3), (2,1), (3,1) are.
    mask = np.zeros((4, 4), dtype=bool)
    mask[2:, 2:] = True
    expected = np.zeros((4, 4), dtype=bool)
    expected[1, 1:] = True
    expected[2:, 1] = True
    np.testing.assert_array_equal(boundary_map(mask), expected)


def test_tolerance_radius_is_ceil_of_fraction_of_diagonal() -> None:
    assert tolerance_radius((480, 854)) == 8  # 0.008 * 979.6 = 7.84
    assert tolerance_radius((10, 10)) == 1  # 0.008 * 14.1 = 0.11
    assert tolerance_radius((3, 4), 0.2) == 1  # 0.2 * 5 = 1 exactly: ceil, not floor + 1
    assert tolerance_radius((10, 10), 3) == 3  # >= 1: pixels


def test_one_pixel_shift_is_within_tolerance() -> None:
    # 10x10 image: radius ceil(0.008 * 14.1) = 1, a plus-shaped disk. Square cols 2..5 vs 3..6:
    # outlines cols 1..5 vs 2..6, every boundary pixel has one of the other within 1 px: F = 1.
    # J = overlap 4x3 = 12 / union 20 = 0.6.
    gt, pred = square(2, 2), square(2, 3)
    assert boundary_measure(pred, gt) == 1.0
    assert region_similarity(pred, gt) == pytest.approx(0.6)


def test_two_pixel_shift_partly_outside_tolerance() -> None:
    # Square cols 2..5 (outline rows 1..5 x cols 1..5) vs cols 4..7 (outline rows 1..5 x cols
    # 3..7), radius 1. Predicted outline pixels within 1 px of the gt outline: rows 1 and 5 at
    # cols 3..6 (8 px) plus (2,3) and (4,3), next to rows 1 and 5 (2 px): 10 of 16. The misses
    # are (3,3) and col 7 (rows 1..5), 2 px from col 5. P = 10/16, R = 10/16 by mirror symmetry,
    # F = 0.625. J = overlap 4x2 = 8 / union 24.
    gt, pred = square(2, 2), square(2, 4)
    assert boundary_measure(pred, gt) == pytest.approx(0.625)
    assert region_similarity(pred, gt) == pytest.approx(1 / 3)
    # With a 2-pixel tolerance every outline pixel is matched.
    assert boundary_measure(pred, gt, bound_th=2) == 1.0


def test_stack_gives_per_frame_scores() -> None:
    gt = np.stack([square(2, 2), square(2, 2)])
    pred = np.stack([square(2, 2), square(2, 4)])
    np.testing.assert_allclose(region_similarity(pred, gt), [1.0, 1 / 3])
    np.testing.assert_allclose(boundary_measure(pred, gt), [1.0, 0.625])


def test_void_pixels_are_ignored() -> None:
    gt = square(2, 2)
    pred = gt.copy()
    pred[2:6, 6:8] = True  # 8 extra pixels, all void in the gt
    void = np.zeros_like(gt)
    void[2:6, 6:8] = True
    assert region_similarity(pred, gt) == pytest.approx(16 / 24)
    assert region_similarity(pred, gt, void=void) == 1.0
    assert boundary_measure(pred, gt, void=void) == 1.0


def test_metric_shape_mismatch_is_an_error() -> None:
    with pytest.raises(DevaError, match="equal"):
        region_similarity(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


# --- per-sequence protocols --------------------------------------------------------------------


def two_object_gt(frames: int = 3) -> np.ndarray:
    # object 1: 4x4 (area 16), object 2: 6x6 (area 36), disjoint, in a 16x16 frame.
    ids = np.zeros((frames, 16, 16), dtype=np.int32)
    ids[:, 1:5, 1:5] = 1
    ids[:, 8:14, 8:14] = 2
    return ids


def relabel(ids: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = np.zeros_like(ids)
    for old, new in mapping.items():
        out[ids == old] = new
    return out


def test_identity_perfect_prediction() -> None:
    gt = two_object_gt()
    score = evaluate_sequence(gt.copy(), gt, match="identity")
    assert [(o.gt_id, o.pred_id, o.j, o.f) for o in score.objects] == [
        (1, 1, 1.0, 1.0),
        (2, 2, 1.0, 1.0),
    ]
    assert score.jf_mean == 1.0


def test_hungarian_finds_permuted_ids_identity_does_not() -> None:
    gt = two_object_gt()
    pred = relabel(gt, {1: 5, 2: 9})
    pred[:, 12:14, 8:14] = 3  # distractor: the bottom 2x6 strip of object 2
    # Object 2 (36 px) vs id 9: overlap 24 / union 36; vs id 3: 12 / 36. Object 1 vs id 5: 1.
    score = evaluate_sequence(pred, gt, match="hungarian")
    assert {o.gt_id: o.pred_id for o in score.objects} == {1: 5, 2: 9}
    assert score.objects[0].j == 1.0 and score.objects[0].f == 1.0
    assert score.objects[1].j == pytest.approx(24 / 36)

    clean = relabel(gt, {1: 5, 2: 9})
    assert evaluate_sequence(clean, gt, match="hungarian").jf_mean == 1.0
    identity = evaluate_sequence(clean, gt, match="identity")
    assert identity.j_mean == 0.0 and identity.f_mean == 0.0


def test_hungarian_max_proposals_keeps_largest_and_leaves_object_unmatched() -> None:
    gt = two_object_gt()
    pred = relabel(gt, {1: 5, 2: 9})
    score = evaluate_sequence(pred, gt, match="hungarian", max_proposals=1)
    # Only id 9 (area 36 > 16) is a proposal; it goes to object 2, object 1 gets nothing.
    assert [(o.gt_id, o.pred_id, o.j, o.f) for o in score.objects] == [
        (1, None, 0.0, 0.0),
        (2, 9, 1.0, 1.0),
    ]
    assert score.jf_mean == 0.5


def test_union_protocol_ignores_ids() -> None:
    gt = two_object_gt()
    permuted = relabel(gt, {1: 7, 2: 3})
    assert evaluate_sequence(permuted, gt, match="union").jf_mean == 1.0
    # Predicting only object 1: foreground overlap 16, union 16 + 36 = 52.
    only_first = relabel(gt, {1: 1})
    score = evaluate_sequence(only_first, gt, match="union")
    assert len(score.objects) == 1
    assert score.j_mean == pytest.approx(16 / 52)


def test_skip_first_last_frames() -> None:
    gt = two_object_gt(frames=4)
    pred = gt.copy()
    pred[0] = 0
    pred[3] = 0
    assert evaluate_sequence(pred, gt, skip_first_last=True).jf_mean == 1.0
    # All 4 frames: two perfect, two empty (J = F = 0) -> 0.5.
    score = evaluate_sequence(pred, gt, skip_first_last=False)
    assert score.j_mean == 0.5 and score.f_mean == 0.5
    assert score.num_frames == 4


def test_gt_void_ignored_or_background() -> None:
    gt = np.zeros((1, 10, 10), dtype=np.int32)
    gt[0, 2:6, 2:6] = 1
    gt[0, 2:6, 6:8] = 255
    pred = np.zeros_like(gt)
    pred[0, 2:6, 2:8] = 1  # object plus the void band
    assert evaluate_sequence(pred, gt).j_mean == 1.0
    # Official loader behaviour: void is background, so 16 / 24.
    assert evaluate_sequence(pred, gt, ignore_void=False).j_mean == pytest.approx(16 / 24)


def test_sequence_argument_errors() -> None:
    gt = two_object_gt()
    with pytest.raises(DevaError, match="match"):
        evaluate_sequence(gt, gt, match="best")  # type: ignore[arg-type]
    with pytest.raises(DevaError, match="equal"):
        evaluate_sequence(gt[:2], gt)
    with pytest.raises(DevaError, match="3 frames"):
        evaluate_sequence(gt[:2], gt[:2], skip_first_last=True)


# --- dataset runner ----------------------------------------------------------------------------


def write_sequence(folder: Path, ids: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(ids):
        write_id_png(folder / f"{t:05d}.png", frame)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Ground truth: seqA with objects 1, 2; seqB with object 1 and a void band; seqC (unused)."""
    root = tmp_path / "davis"
    gt_dir = root / "Annotations" / "480p"
    write_sequence(gt_dir / "seqA", two_object_gt(frames=4))
    seq_b = np.zeros((4, 12, 12), dtype=np.int32)
    seq_b[:, 3:7, 3:7] = 1
    seq_b[:, 3:7, 7:9] = 255
    write_sequence(gt_dir / "seqB", seq_b)
    write_sequence(gt_dir / "seqC", two_object_gt(frames=3))
    return root


def write_results(results: Path, layout: str) -> None:
    """seqA: both objects perfect but ids swapped. seqB: at 2x resolution, object 1 plus the
    void band, empty in the first and last frame. An extra folder that is not a sequence."""

    def folder(seq: str) -> Path:
        return results / seq / "masks" if layout == "deva" else results / seq

    write_sequence(folder("seqA"), relabel(two_object_gt(frames=4), {1: 2, 2: 1}))
    seq_b = np.zeros((4, 24, 24), dtype=np.int32)
    seq_b[1:3, 6:14, 6:18] = 1
    write_sequence(folder("seqB"), seq_b)
    (results / "not-a-sequence").mkdir(parents=True)


@pytest.mark.parametrize("layout", ["deva", "plain"])
def test_evaluate_davis_unsupervised(dataset: Path, tmp_path: Path, layout: str) -> None:
    results = tmp_path / "results"
    write_results(results, layout)
    report = evaluate_davis(results, dataset, subset=True)
    assert report.match == "hungarian"
    assert [s.name for s in report.sequences] == ["seqA", "seqB"]  # seqC has no results
    seq_a, seq_b = report.sequences
    assert seq_a.jf_mean == 1.0  # swapped ids matched back
    # seqB over all 4 frames: two perfect (void ignored, resized 2x -> exact), two empty.
    assert seq_b.j_mean == 0.5 and seq_b.f_mean == 0.5
    # Dataset mean over the 3 objects: (1 + 1 + 0.5) / 3.
    assert report.j_mean == pytest.approx(2.5 / 3)
    assert report.jf_mean == pytest.approx(2.5 / 3)
    table = report.to_markdown()
    assert "Convention: davis2017-evaluation unsupervised (" in table
    assert "void (255) ignored" in table
    assert "SUBSET, 2 of the 3" in table and "no results): seqC" in table
    assert "ignored, not in the ground truth: not-a-sequence" in table
    assert "| seqA | 2 | 4 | 1.000 | 1.000 | 1.000 |" in table
    assert "| seqB | 1 | 4 | 0.500 |" in table
    assert "**Mean**" in table and "0.833" in table


@pytest.mark.parametrize("layout", ["deva", "plain"])
def test_evaluate_davis_semi_supervised(dataset: Path, tmp_path: Path, layout: str) -> None:
    results = tmp_path / "results"
    write_results(results, layout)
    report = evaluate_davis(results, dataset, task="semi-supervised", subset=True)
    assert report.match == "identity"
    seq_a, seq_b = report.sequences
    assert seq_a.num_frames == 2 and seq_a.j_mean == 0.0  # swapped ids, disjoint objects
    # The two empty frames are the skipped first and last. The official semi-supervised
    # convention counts the 4x2 void band the prediction covers as background: J = 16 / 24.
    assert seq_b.j_mean == pytest.approx(16 / 24)
    assert "Convention: davis2017-evaluation semi-supervised (" in report.to_markdown()
    ignored = evaluate_davis(results, dataset, task="semi-supervised", subset=True, void="ignore")
    assert ignored.sequences[1].jf_mean == 1.0
    # Mean over objects, not sequences: (0 + 0 + 1) / 3.
    assert ignored.j_mean == pytest.approx(1 / 3)
    assert "void (255) ignored (official: background)" in ignored.to_markdown()
    assert "not the official tool's" in ignored.to_markdown()
    union = evaluate_davis(
        results, dataset, task="semi-supervised", match="union", subset=True, void="ignore"
    )
    assert union.jf_mean == 1.0


def test_semi_supervised_does_not_need_first_frame_result(dataset: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_results(results, "plain")
    (results / "seqB" / "00000.png").unlink()
    report = evaluate_davis(
        results, dataset, task="semi-supervised", sequences=["seqB"], void="ignore"
    )
    assert report.jf_mean == 1.0
    assert "Sequences: 1 chosen (seqB)" in report.to_markdown()


def test_binary_davis2016_annotation_uses_255_as_object(tmp_path: Path) -> None:
    gt_dir = tmp_path / "davis" / "Annotations" / "480p" / "seq"
    results = tmp_path / "results" / "seq"
    gt_dir.mkdir(parents=True)
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:5, 2:5] = 255
    for t in range(3):
        Image.fromarray(mask, mode="L").save(gt_dir / f"{t:05d}.png")
    write_sequence(results, np.stack([(mask > 0).astype(np.int32)] * 3))
    report = evaluate_davis(tmp_path / "results", tmp_path / "davis", match="union")
    assert report.jf_mean == 1.0
    assert "Binary DAVIS-2016 annotations" in report.to_markdown()
    empty = np.zeros((3, 8, 8), dtype=np.int32)
    write_sequence(results, empty)
    assert evaluate_davis(tmp_path / "results", tmp_path / "davis").jf_mean == 0.0


def test_runner_errors(dataset: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    with pytest.raises(DevaError, match=str(results)):
        evaluate_davis(results, dataset)
    write_results(results, "deva")
    with pytest.raises(DevaError, match="seqC.*missing in the results"):
        evaluate_davis(results, dataset, sequences=["seqC"])
    with pytest.raises(DevaError, match="'nope' not in the ground truth"):
        evaluate_davis(results, dataset, sequences=["nope"])
    with pytest.raises(DevaError, match="Annotations"):
        evaluate_davis(results, tmp_path / "results")
    with pytest.raises(DevaError, match="task"):
        evaluate_davis(results, dataset, task="supervised")  # type: ignore[arg-type]
    with pytest.raises(DevaError, match="void convention"):
        evaluate_davis(results, dataset, void="keep")  # type: ignore[arg-type]
    missing = results / "seqA" / "masks" / "00002.png"
    missing.unlink()
    with pytest.raises(DevaError, match=f"{missing}.*missing"):
        evaluate_davis(results, dataset, subset=True)
    shutil.rmtree(results)
    results.mkdir()
    with pytest.raises(DevaError, match="no sequence matches a ground-truth sequence"):
        evaluate_davis(results, dataset, subset=True)


def test_misnamed_or_missing_results_are_one_line_errors(dataset: Path, tmp_path: Path) -> None:
    """The official tool stops when a sequence of the set has no results; a results folder
    named for another video would otherwise drop that sequence from the mean unnoticed."""
    results = tmp_path / "results"
    write_sequence(results / "seqA", two_object_gt(frames=4))
    write_sequence(results / "seqB", np.zeros((4, 12, 12), dtype=np.int32))
    write_sequence(results / "seq-c", two_object_gt(frames=3))  # seqC, misnamed
    with pytest.raises(DevaError, match=r"1 results sequence\(s\) not in the ground truth: seq-c"):
        evaluate_davis(results, dataset)
    shutil.rmtree(results / "seq-c")
    with pytest.raises(
        DevaError, match=r"no results for 1 of the 3 sequences .*: seqC \(pass --subset"
    ):
        evaluate_davis(results, dataset)
    out = CliRunner().invoke(
        app, ["eval", "davis", "--results", str(results), "--davis-root", str(dataset)]
    )
    assert out.exit_code == 2 and "seqC" in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
    out = CliRunner().invoke(
        app,
        ["eval", "davis", "--results", str(results), "--davis-root", str(dataset), "--subset"],
    )
    assert out.exit_code == 0, out.output
    assert "SUBSET, 2 of the 3" in out.output


def test_image_sets_choose_the_sequences(dataset: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_sequence(results / "seqA", two_object_gt(frames=4))
    write_sequence(results / "seqC", two_object_gt(frames=3))
    sets = dataset / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("seqA\nseqC\n")
    (sets / "train.txt").write_text("seqB\n")
    # Default: the val list where it exists, as the official tool; seqB needs no results.
    report = evaluate_davis(results, dataset)
    assert [s.name for s in report.sequences] == ["seqA", "seqC"]
    assert f"Sequences: all 2 of {sets / 'val.txt'}." in report.to_markdown()
    with pytest.raises(DevaError, match=r"no results for 1 of the 1 sequences .*: seqB"):
        evaluate_davis(results, dataset, image_set="train")
    # DAVIS-2016 lists frame paths; the sequence is the frame's folder.
    listing = tmp_path / "davis16.txt"
    listing.write_text(
        "/JPEGImages/480p/seqC/00000.jpg /Annotations/480p/seqC/00000.png\n"
        "/JPEGImages/480p/seqC/00001.jpg /Annotations/480p/seqC/00001.png\n"
    )
    assert [s.name for s in evaluate_davis(results, dataset, image_set=str(listing)).sequences] == [
        "seqC"
    ]
    with pytest.raises(DevaError, match="--set test: no such list"):
        evaluate_davis(results, dataset, image_set="test")
    (sets / "val.txt").write_text("seqA\nseqZ\n")
    with pytest.raises(DevaError, match="have no annotations .*: seqZ"):
        evaluate_davis(results, dataset)


def test_unsupervised_reads_the_unsupervised_annotations(dataset: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    gt = two_object_gt(frames=3)
    write_sequence(results / "seqA", gt)
    unsupervised = dataset / "Annotations_unsupervised" / "480p" / "seqA"
    write_sequence(unsupervised, relabel(gt, {1: 1}))  # only object 1 is annotated there
    report = evaluate_davis(results, dataset)
    assert [o.gt_id for o in report.sequences[0].objects] == [1]
    assert "Annotations_unsupervised" in report.to_markdown()
    semi = evaluate_davis(results, dataset, task="semi-supervised", subset=True)
    assert [o.gt_id for o in semi.sequences[0].objects] == [1, 2]


# --- conventions: known answers from the official definitions ----------------------------------


def test_semi_supervised_void_counts_as_background(tmp_path: Path) -> None:
    """davis2017-evaluation sets void to 0 in the gt and passes no void mask in the
    semi-supervised task. Middle frame (the scored one): object 1 is rows 2-5 x cols 2-5 (16 px),
    void rows 2-5 x cols 6-7 (8 px); the prediction covers both (24 px).
    J = 16 / 24. F (tolerance ceil(0.008 * hypot(10, 10)) = 1 px, a cross): the gt boundary is
    the 5x5 outline at rows 1-5, cols 1-5 (16 px), the prediction's the 5x7 outline at rows 1-5,
    cols 1-7 (20 px). Predicted boundary pixels within 1 px of the gt one: rows 1 and 5 at cols
    1-6 and col 1 at rows 2-4, 15 -> P = 15 / 20; gt boundary pixels near the prediction's: all
    but (3, 5), 15 -> R = 15 / 16; F = 2PR / (P + R) = 5 / 6. Unsupervised ignores void: 1."""
    gt = np.zeros((3, 10, 10), dtype=np.int32)
    gt[:, 2:6, 2:6] = 1
    gt[:, 2:6, 6:8] = 255
    pred = np.zeros_like(gt)
    pred[:, 2:6, 2:8] = 1
    write_sequence(tmp_path / "davis" / "Annotations" / "480p" / "seq", gt)
    write_sequence(tmp_path / "results" / "seq", pred)
    semi = evaluate_davis(tmp_path / "results", tmp_path / "davis", task="semi-supervised")
    assert semi.j_mean == pytest.approx(2 / 3)
    assert semi.f_mean == pytest.approx(5 / 6)
    assert semi.jf_mean == pytest.approx(0.75)
    ignored = evaluate_davis(
        tmp_path / "results", tmp_path / "davis", task="semi-supervised", void="ignore"
    )
    assert ignored.jf_mean == 1.0
    unsupervised = evaluate_davis(tmp_path / "results", tmp_path / "davis")
    assert unsupervised.jf_mean == 1.0
    background = evaluate_davis(tmp_path / "results", tmp_path / "davis", void="background")
    assert background.j_mean == pytest.approx(2 / 3)
    args = ["eval", "davis", "--results", str(tmp_path / "results"), "--davis-root"]
    args += [str(tmp_path / "davis"), "--task", "semi-supervised"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0 and "| **Mean** | 1 | 1 | **0.750** |" in out.output, out.output
    out = CliRunner().invoke(app, [*args, "--void", "ignore", "--objects", "all"])
    assert out.exit_code == 0 and "| **Mean** | 1 | 1 | **1.000** |" in out.output, out.output
    assert "objects = every id of any frame (official: ids 1..max" in out.output


def test_objects_are_those_of_the_first_frame(tmp_path: Path) -> None:
    """The official loader scores objects 1..max(first frame): here frame 0 holds ids 1 and 3,
    so objects 1, 2, 3; id 4 enters at frame 1 and is not scored. Scored frames 1 and 2:
    objects 1 and 3 perfect; object 2 has no gt, and the prediction paints id 2 in frame 1 only
    (J = F = 0 there, 1 in frame 2 where both are empty) -> 0.5; mean (1 + 0.5 + 1) / 3 = 5/6.
    With every id an object (1, 3, 4): id 4 is missed (J = F = 0) -> (1 + 1 + 0) / 3 = 2/3."""
    gt = np.zeros((4, 16, 16), dtype=np.int32)
    gt[:, 1:5, 1:5] = 1
    gt[:, 8:12, 8:12] = 3
    gt[1:, 1:5, 10:14] = 4
    pred = np.where(gt == 4, 0, gt)
    pred[1, 12:15, 1:4] = 2
    write_sequence(tmp_path / "davis" / "Annotations" / "480p" / "seq", gt)
    write_sequence(tmp_path / "results" / "seq", pred)
    args = (tmp_path / "results", tmp_path / "davis")
    report = evaluate_davis(*args, task="semi-supervised")
    assert [o.gt_id for o in report.sequences[0].objects] == [1, 2, 3]
    assert report.j_mean == pytest.approx(5 / 6) and report.f_mean == pytest.approx(5 / 6)
    assert "objects = ids 1..max of the first frame" in report.to_markdown()
    every = evaluate_davis(*args, task="semi-supervised", objects="all")
    assert [o.gt_id for o in every.sequences[0].objects] == [1, 3, 4]
    assert every.jf_mean == pytest.approx(2 / 3)
    assert gt_objects(gt, "first-frame") == [1, 2, 3] and gt_objects(gt, "all") == [1, 3, 4]


# --- real data ---------------------------------------------------------------------------------


def test_real_ground_truth_against_itself() -> None:
    annotations = DAVIS16 / "Annotations" / "480p"
    report = evaluate_davis(annotations, DAVIS16, task="semi-supervised", sequences=["blackswan"])
    (seq,) = report.sequences
    assert seq.num_frames == len(list((annotations / "blackswan").glob("*.png"))) - 2
    assert seq.j_mean == 1.0 and seq.f_mean == 1.0
