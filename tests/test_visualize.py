"""Overlay: background untouched, objects tinted and outlined, labels inside the object."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deva.errors import DevaError
from deva.io.masks import davis_palette
from deva.io.visualize import id_colour, label_point, overlay


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (120, 160, 3), dtype=np.uint8)
    ids = np.zeros((120, 160), np.int32)
    cv2.circle(ids, (40, 40), 20, 1, -1)
    ids[70:110, 90:150] = 2
    ids[5:15, 100:110] = 1000  # a large id uses the hash colour
    return image, ids


def _u_shape() -> np.ndarray:
    """A U whose centroid (and bbox centre) lies in the empty gap between the arms."""
    mask = np.zeros((200, 200), bool)
    mask[20:180, 20:60] = True  # left arm
    mask[20:180, 140:180] = True  # right arm
    mask[140:180, 20:180] = True  # bottom bar
    return mask


def test_id_colour() -> None:
    palette = davis_palette()
    assert id_colour(1) == tuple(int(c) for c in palette[1]) == (128, 0, 0)
    assert id_colour(255) == tuple(int(c) for c in palette[255])
    big = [id_colour(i) for i in range(256, 356)]
    assert big == [id_colour(i) for i in range(256, 356)], "deterministic"
    assert len(set(big)) > 95, "neighbouring ids get different colours"
    assert all(max(c) >= 200 for c in big), "bright"
    with pytest.raises(DevaError):
        id_colour(-1)


def test_background_untouched_objects_changed() -> None:
    image, ids = _scene()
    before = image.copy()
    for draw_ids in (False, True):
        out = overlay(image, ids, draw_ids=draw_ids)
        assert out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(image, before, "input is not modified")
        changed = (out != image).any(axis=-1)
        if not draw_ids:
            assert not changed[ids == 0].any(), "background pixels must stay as they were"
        else:
            # Text may cross an edge, but a band far from every object stays untouched.
            far = cv2.dilate((ids != 0).astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
            assert far.any() and not changed[far].any()
        assert changed[ids != 0].mean() > 0.99, "object pixels are tinted"


def test_tint_and_outline_colours() -> None:
    image = np.full((60, 80, 3), 100, np.uint8)
    ids = np.zeros((60, 80), np.int32)
    ids[10:50, 10:70] = 1
    out = overlay(image, ids, alpha=0.5, draw_ids=False)
    # Interior: halfway between grey 100 and id 1's colour (128, 0, 0).
    np.testing.assert_allclose(out[30, 20], [114, 50, 50], atol=1)
    # Edge pixels carry the outline (a darker shade of the object's colour), not the tint.
    assert not np.array_equal(out[10, 40], out[30, 20])
    assert out[10, 40, 0] < 114
    np.testing.assert_array_equal(overlay(image, ids, alpha=0.0, draw_ids=False)[30, 20], 100)


def test_label_point_inside_non_convex_object() -> None:
    mask = _u_shape()
    ys, xs = np.nonzero(mask)
    assert not mask[int(ys.mean()), int(xs.mean())], "the centroid is outside: the test is hard"
    x, y = label_point(mask)
    assert mask[y, x]
    # The deepest point of the U: the bar/arm junction, well away from every edge.
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)
    assert distance[y + 1, x + 1] >= 15
    with pytest.raises(DevaError):
        label_point(np.zeros((5, 5), bool))


def test_text_is_drawn_inside_the_object() -> None:
    mask = _u_shape()
    ids = mask.astype(np.int32) * 7
    image = np.full((200, 200, 3), 90, np.uint8)
    plain = overlay(image, ids, draw_ids=False)
    texted = overlay(image, ids, draw_ids=True)
    text = (plain != texted).any(axis=-1)
    assert text.sum() > 20, "the id is written"
    x, y = label_point(mask)
    assert text[y - 12 : y + 13, x - 12 : x + 13].any(), "near the chosen point"
    assert mask[text].mean() > 0.95, "the text sits on the object, not in the gap"
    labelled = overlay(image, ids, labels={7: "swan"})
    assert ((labelled != plain).any(axis=-1)).sum() > text.sum(), "labels replace the id"


def test_empty_and_invalid_inputs() -> None:
    image, ids = _scene()
    np.testing.assert_array_equal(overlay(image, np.zeros_like(ids)), image)
    with pytest.raises(DevaError, match="does not match"):
        overlay(image, ids[:10])
    with pytest.raises(DevaError, match="uint8"):
        overlay(image.astype(np.float32), ids)
    with pytest.raises(DevaError, match="integer"):
        overlay(image, ids.astype(np.float32))
    with pytest.raises(DevaError, match="alpha"):
        overlay(image, ids, alpha=1.5)
    with pytest.raises(DevaError, match="negative"):
        overlay(image, ids - 1)


def test_overlay_style_options() -> None:
    image, ids = _scene()
    bare = overlay(image, ids, alpha=0.0, contours=False, labels={1: None, 2: None, 1000: None})
    np.testing.assert_array_equal(bare, image)  # no tint, no outline, no text
    outlined = overlay(image, ids, alpha=0.0, draw_ids=False)
    changed = (outlined != image).any(axis=-1)
    assert changed.any() and (ids[changed] != 0).all(), "outlines lie on the objects only"
    inner = cv2.erode((ids == 2).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not changed[inner].any(), "only the edge of the rectangle is drawn"
    # On a large frame the outline widens with the frame (2 px at 960 px and up).
    big_ids = cv2.resize(ids, (1280, 960), interpolation=cv2.INTER_NEAREST)  # x8
    big = cv2.resize(image, (1280, 960))
    drawn = (overlay(big, big_ids, alpha=0.0, draw_ids=False) != big).any(axis=-1)
    row = drawn[700, 716:730]  # across the left edge of object 2 (x = 720)
    assert row.tolist() == [False] * 4 + [True] * 2 + [False] * 8


def test_overlay_style_labels_and_validation() -> None:
    from deva.io.visualize import OverlayStyle

    assert OverlayStyle().label(3, "dog") == "3 dog"
    assert OverlayStyle(labels="id").label(3, "dog") == "3"
    assert OverlayStyle(labels="name").label(3, "dog") == "dog"
    assert OverlayStyle(labels="name").label(3, None) == "3"
    assert OverlayStyle(labels="none").label(3, "dog") is None
    with pytest.raises(DevaError, match="--overlay-alpha"):
        OverlayStyle(alpha=2.0)
    with pytest.raises(DevaError, match="unknown labels"):
        OverlayStyle(labels="all")


@pytest.mark.parametrize("background", [255, 0])
def test_labels_read_on_light_and_dark_objects(background: int) -> None:
    """White text inside a black outline at least 2 px wide: readable on any colour."""
    image = np.full((120, 200, 3), background, np.uint8)
    ids = np.zeros((120, 200), np.int32)
    ids[10:110, 10:190] = 5
    plain = overlay(image, ids, alpha=0.0, contours=False, labels={5: None})
    texted = overlay(image, ids, alpha=0.0, contours=False, labels={5: "5 white paper"})
    region = texted[(texted != plain).any(axis=-1)]
    dark = (region.max(axis=-1) < 60).sum()
    light = (region.min(axis=-1) > 200).sum()
    assert light > 30 and dark > 30, (light, dark)
    if background == 255:
        assert dark > light  # the outline is wider than the strokes it surrounds
