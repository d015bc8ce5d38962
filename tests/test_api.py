"""The Python API as a notebook would use it."""

import subprocess
import sys

import pytest

import deva
from deva.demo import render_demo
from deva.io.masks import write_id_png

CLIP = render_demo(num_frames=8, height=120, width=200)


class Truth:
    """A user's own segmenter: any object with this ``segment`` method works."""

    def segment(self, image, *, frame_index, unsegmented=None):
        return deva.Segmentation.from_ids(CLIP.masks[frame_index])


def test_track_streams_results_from_arrays_with_a_user_segmenter():
    results = deva.track(list(CLIP.frames), segmenter=Truth(), config=deva.TrackerConfig())
    assert not isinstance(results, list)  # a generator: nothing is computed up front
    results = list(results)
    assert [r.frame_index for r in results] == list(range(8))
    assert results[0].ids.shape == (120, 200)
    assert len(results[0].objects) == 2


def test_track_with_a_detection_folder_uses_the_precomputed_segmenter(tmp_path):
    for index, mask in enumerate(CLIP.masks):
        write_id_png(tmp_path / f"{index:05d}.png", mask * 3)
    results = list(deva.track(list(CLIP.frames), detections=tmp_path))
    tracked = results[4].ids > 0
    truth = CLIP.masks[4] > 0
    assert (tracked & truth).sum() / (tracked | truth).sum() > 0.8


def test_unknown_names_list_the_available_ones():
    with pytest.raises(deva.DevaError, match="available: motion, precomputed"):
        deva.track(list(CLIP.frames), segmenter="sam9")
    with pytest.raises(deva.DevaError, match="available: flow"):
        deva.track(list(CLIP.frames), propagator="magic")


def test_import_deva_is_light():
    code = "import sys, deva; print('cv2' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
