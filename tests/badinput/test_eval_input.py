"""``deva eval davis`` on results and DAVIS roots that are incomplete or malformed."""

from __future__ import annotations

from pathlib import Path

from deva.io.masks import write_id_png

from . import make
from .harness import deva, fails


def evaluate(results: Path, root: Path, *extra: str):
    return deva("eval", "davis", "--results", results, "--davis-root", root, *extra)


def test_results_missing_a_frame(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis")
    results = make.results(tmp_path / "res")
    (results / "seq" / "masks" / "00001.png").unlink()
    fails(evaluate(results, root), "00001.png", "result frame missing")


def test_results_named_for_no_sequence_of_the_benchmark(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis")
    results = make.results(tmp_path / "res", sequence="other")
    fails(evaluate(results, root), "res", "1 results sequence(s) not in the ground truth: other")


def test_results_missing_some_sequences(tmp_path: Path) -> None:
    """Each missing sequence is named; --subset (documented) scores the others and says so."""
    root = make.davis_root(tmp_path / "davis")
    make.davis_root(root, sequence="unscored")
    results = make.results(tmp_path / "res")
    fails(evaluate(results, root), "no results for 1 of the 2 sequences", "unscored", "--subset")
    outcome = evaluate(results, root, "--subset")
    assert outcome.exit_code == 0, outcome.output
    assert "| seq |" in outcome.output and "not scored (no results): unscored" in outcome.output


def test_results_at_another_resolution_are_resized(tmp_path: Path) -> None:
    """Recovery: a 2x result of the same frames is resized to the ground truth."""
    root = make.davis_root(tmp_path / "davis")
    results = make.results(tmp_path / "res", shape=(64, 96))
    assert evaluate(results, root).exit_code == 0


def test_results_of_another_aspect_ratio(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis")
    results = make.results(tmp_path / "res", shape=(32, 32))
    fails(evaluate(results, root), "00000.png", "32x32", "48x32", "aspect ratio")


def test_corrupt_result_mask(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis")
    results = make.results(tmp_path / "res")
    (results / "seq" / "masks" / "00002.png").write_bytes(b"GIF89a")
    fails(evaluate(results, root), "00002.png", "not a readable PNG")


def test_davis_root_without_annotations(tmp_path: Path) -> None:
    root = tmp_path / "davis"
    (root / "JPEGImages" / "480p" / "seq").mkdir(parents=True)
    results = make.results(tmp_path / "res")
    fails(evaluate(results, root), "Annotations", "not found")


def test_unknown_annotation_resolution(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis")
    results = make.results(tmp_path / "res")
    fails(evaluate(results, root, "--resolution", "Full-Resolution"), "Full-Resolution")


def test_ground_truth_frames_of_different_sizes(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis")
    write_id_png(root / "Annotations" / "480p" / "seq" / "00002.png", make.box_ids((16, 24)))
    fails(evaluate(make.results(tmp_path / "res"), root), "00002.png", "differs")


def test_ground_truth_sequence_without_pngs(tmp_path: Path) -> None:
    root = make.davis_root(tmp_path / "davis", count=0)
    fails(evaluate(make.results(tmp_path / "res"), root), "seq", "no ground-truth PNGs")
