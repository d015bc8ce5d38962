"""Speed of the benchmark evaluators (`deva eval vipseg`, `deva eval burst`) on fixtures in
their official layouts built from the six shared DAVIS clips at 854×480.

VIPSeg-like: the DAVIS object is a thing, the rest two stuff regions and a VOID strip; the
prediction shifts the object 3 px and switches its id halfway through each clip. BURST-like: every
3rd frame annotated, the object as one track; the same shifted, switched prediction.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench import tracking
from deva.eval.burst import evaluate_burst
from deva.eval.vipseg import evaluate_vipseg
from deva.io.masks import read_id_png
from deva.io.rle import encode_counts

CATEGORIES = [{"id": 0, "isthing": 0}, {"id": 1, "isthing": 0}, {"id": 2, "isthing": 1}]


def _rgb(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)


def _panoptic(mask: np.ndarray, thing: int, top: int, bottom: int) -> np.ndarray:
    ids = np.where(np.arange(mask.shape[0])[:, None] < mask.shape[0] // 2, top, bottom)
    ids = np.where(mask, thing, ids).astype(np.int64)
    ids[:, -4:] = 0
    return ids


def _clips() -> dict[str, list[np.ndarray]]:
    root = tracking.DAVIS / "Annotations" / "480p"
    return {
        seq: [read_id_png(p) > 0 for p in sorted((root / seq).glob("*.png"))]
        for seq in tracking.SEQUENCES
    }


def _prediction(mask: np.ndarray) -> np.ndarray:
    return np.roll(mask, 3, axis=1)


def _build(scratch: Path, clips: dict[str, list[np.ndarray]]) -> tuple[Path, Path, Path, Path]:
    gt_dir, results = scratch / "VIPSeg_720P", scratch / "vipseg_results"
    gt = {"categories": CATEGORIES, "videos": [], "annotations": []}
    pred = {"annotations": []}
    burst_gt, burst_pred = {"sequences": []}, {"sequences": []}
    for seq, masks in clips.items():
        names = [f"{t:05d}" for t in range(len(masks))]
        gt_frames, pred_frames, b_gt, b_pred, b_paths = [], [], [], [], []
        for t, mask in enumerate(masks):
            thing = 300000 if t < len(masks) // 2 else 300001
            _rgb(gt_dir / "panomasksRGB" / seq / f"{names[t]}.png", _panoptic(mask, 1000, 7, 8))
            pm = _prediction(mask)
            _rgb(results / "pan_pred" / seq / f"{names[t]}.png", _panoptic(pm, thing, 5, 6))
            gt_frames.append(
                {
                    "segments_info": [
                        {"id": 1000, "category_id": 2},
                        {"id": 7, "category_id": 0},
                        {"id": 8, "category_id": 1},
                    ]
                }
            )
            pred_frames.append(
                {
                    "file_name": f"{names[t]}.jpg",
                    "segments_info": [
                        {"id": thing, "category_id": 2},
                        {"id": 5, "category_id": 0},
                        {"id": 6, "category_id": 1},
                    ],
                }
            )
            if t % 3 == 0:
                b_paths.append(f"{names[t]}.jpg")
                b_gt.append({"1": {"rle": encode_counts(mask)}})
                b_pred.append({str(thing): {"rle": encode_counts(pm), "score": 0.9}})
        gt["videos"].append({"video_id": seq, "images": [{"file_name": n} for n in names]})
        gt["annotations"].append({"video_id": seq, "annotations": gt_frames})
        pred["annotations"].append({"video_id": seq, "annotations": pred_frames})
        h, w = masks[0].shape
        base = {"dataset": "DAVIS", "seq_name": seq, "height": h, "width": w}
        burst_gt["sequences"].append(
            {**base, "annotated_image_paths": b_paths, "segmentations": b_gt,
             "track_category_ids": {"1": 805}}
        )  # fmt: skip
        burst_pred["sequences"].append(
            {**base, "annotated_image_paths": b_paths, "segmentations": b_pred}
        )
    (gt_dir / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(gt))
    (results / "pred.json").write_text(json.dumps(pred))
    burst_gt_file, burst_pred_file = scratch / "burst_gt.json", scratch / "burst_pred.json"
    burst_gt_file.write_text(json.dumps(burst_gt))
    burst_pred_file.write_text(json.dumps(burst_pred))
    return results, gt_dir, burst_pred_file, burst_gt_file


def measure() -> list[dict]:
    clips = _clips()
    frames = sum(len(m) for m in clips.values())
    with tempfile.TemporaryDirectory() as scratch:
        results, gt_dir, burst_pred, burst_gt = _build(Path(scratch), clips)
        start = time.perf_counter()
        vipseg = evaluate_vipseg(results, gt_dir).summary()
        vipseg_s = time.perf_counter() - start
        start = time.perf_counter()
        burst = evaluate_burst(burst_pred, burst_gt).summary()["all"]
        burst_s = time.perf_counter() - start
        burst_mask = evaluate_burst(burst_pred, burst_gt, iou="mask").summary()["all"]
    annotated = sum((len(m) + 2) // 3 for m in clips.values())
    return [
        {
            "command": "deva eval vipseg (VPQ 7 windows, 2 summaries + STQ)",
            "frames": frames,
            "seconds": vipseg_s,
            "scores": f"VPQ {vipseg['VPQ']:.1f} (DEVA summary; VIPSeg toolkit's "
            f"{vipseg['VPQ_vipseg']:.1f}), STQ {vipseg['STQ']:.1f}",
        },
        {
            "command": "deva eval burst (HOTA/OWTA, 3 splits)",
            "frames": annotated,
            "seconds": burst_s,
            "scores": f"OWTA {burst['OWTA']:.1f}, HOTA {burst['HOTA']:.1f} (box IoU, the "
            f"toolkit's; mask IoU: OWTA {burst_mask['OWTA']:.1f}, HOTA {burst_mask['HOTA']:.1f})",
        },
    ]


def table(rows: list[dict]) -> str:
    lines = [
        "| evaluator | frames | seconds | frames/s | scores of the fixture |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['command']}` | {row['frames']} | {row['seconds']:.2f} | "
            f"**{row['frames'] / row['seconds']:.1f}** | {row['scores']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
