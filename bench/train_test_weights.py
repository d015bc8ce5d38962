"""Train a small propagation network on generated clips (tests/data/tiny_propagation.pth).

The aim: weights that let the tracking checks of the propagator contract suite
(tests/propagator_contract.py) run against the DEVA network. Trained with
``deva.train.trainer.train`` (stage 3 only) on clips like the suite's scenes and ``deva.demo``:
a textured, slowly panning background; textured shapes sliding over it; plain regions of the
background moving with the camera (the suite's "static" and "third" objects are such regions,
with no edge of their own). Run it with OMP_NUM_THREADS=1: ~3.5 it/s on a 2-core CPU, while
2 threads on a busy machine fell to ~0.2 it/s.

Usage: python -m bench.train_test_weights [-o OUT.pth] [--run-dir D [--resume]] [--device auto]
(defaults: tiny network, 1500 iterations of batch 4, 6-frame 96x128 clips, lr 2e-3)

The committed tests/data/tiny_propagation.pth came from three rounds (~27 min on 2 cores with
OMP_NUM_THREADS=1), each starting from the previous one's weights:

    python -m bench.train_test_weights -o a.pth
    python -m bench.train_test_weights -o b.pth --init a.pth --iterations 2000 --lr 1e-3
    python -m bench.train_test_weights --init b.pth --iterations 1500 --lr 5e-4

After the first round the network tracked the moving square but not the plain background
regions the suite also memorizes (IoU 0.57 and 0.62 against 0.7).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from deva.train.augment import normalise
from deva.train.config import StageConfig, TrainConfig
from deva.train.data import VideoSequences
from deva.train.trainer import StepLog, train

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "data" / "tiny_propagation.pth"
SEED = 20240531
DAVIS = ROOT.parent / "shared" / "data" / "davis16-dev"
DAVIS_SEQUENCES = ("blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "dog")


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: random colour blotches at a few scales plus some grain."""
    low, amplitude = rng.uniform(0.0, 0.5), rng.uniform(0.3, 0.8)
    image = np.zeros((height, width, 3), np.float32)
    cells = [(int(rng.integers(10, 24)), 0.5), (int(rng.integers(4, 9)), 0.3), (2, 0.2)]
    for cell, weight in cells:
        coarse = rng.random((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        image += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.clip(image, 0, 1) * amplitude + low, 0, 1)


def shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A rectangle, ellipse or triangle filling a (height, width) box."""
    kind = rng.integers(3)
    if kind == 0:
        return np.ones((height, width), bool)
    canvas = np.zeros((height, width), np.uint8)
    if kind == 1:
        cv2.ellipse(canvas, (width // 2, height // 2), (width // 2, height // 2), 0, 0, 360, 1, -1)
    else:
        points = np.array([[width // 2, 0], [width - 1, height - 1], [0, height - 1]], np.int32)
        cv2.fillPoly(canvas, [points], 1)
    return canvas.astype(bool)


class GeneratedClips(Dataset):
    """Endless generated training clips; item ``i`` of epoch ``e`` is a function of (seed, i, e).

    Objects: textured shapes moving up to ``max_speed`` px per frame (drawn on top) and
    rectangles of the background moving with the camera pan (drawn below, so shapes occlude
    them). Items follow the ``deva.train.data`` contract.
    """

    def __init__(
        self,
        length: int,
        *,
        size: tuple[int, int] = (96, 128),
        num_frames: int = 8,
        max_objects: int = 3,
        max_speed: float = 5.0,
        max_pan: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.length, self.size, self.num_frames = length, size, num_frames
        self.max_objects, self.max_speed, self.max_pan = max_objects, max_speed, max_pan
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, index, self.epoch])
        while True:
            item = self._draw(rng, index)
            if item is not None:
                return item

    def _draw(self, rng: np.random.Generator, index: int) -> dict[str, Any] | None:
        height, width = self.size
        frames = self.num_frames
        pan = rng.uniform(-self.max_pan, self.max_pan, 2) * (rng.random() < 0.6)
        margin = int(np.ceil(np.abs(pan).max() * frames)) + 2
        background = texture(rng, height + 2 * margin, width + 2 * margin)
        count = int(rng.integers(1, self.max_objects + 1))
        objects = []
        for _ in range(count):
            h = int(rng.integers(10, height * 2 // 3))
            w = int(rng.integers(10, width * 2 // 3))
            y, x = rng.uniform(-h / 3, height - 2 * h / 3), rng.uniform(-w / 3, width - 2 * w / 3)
            if rng.random() < 0.4:
                objects.append(("region", shape_mask(rng, h, w), None, (y, x), (0.0, 0.0)))
            else:
                speed = rng.uniform(-self.max_speed, self.max_speed, 2) * (rng.random() < 0.85)
                patch = texture(rng, h, w)
                objects.append(("patch", shape_mask(rng, h, w), patch, (y, x), tuple(speed)))
        objects.sort(key=lambda o: o[0] != "region")  # regions below patches
        images = np.zeros((frames, 3, height, width), np.float32)
        masks = np.zeros((frames, self.max_objects, height, width), np.float32)
        for t in range(frames):
            oy, ox = margin + pan[0] * t, margin + pan[1] * t
            matrix = np.float32([[1, 0, ox], [0, 1, oy]])
            frame = cv2.warpAffine(
                background, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            )
            ids = np.zeros((height, width), np.int32)
            for k, (kind, shape, patch, (y, x), (vy, vx)) in enumerate(objects, start=1):
                if kind == "region":  # fixed in the scene: moves against the camera
                    top, left = y - pan[0] * t, x - pan[1] * t
                else:
                    top, left = y + vy * t, x + vx * t
                placed = _place(shape, top, left, height, width)
                ids[placed] = k
                if patch is not None:
                    moved = _place_image(patch, top, left, height, width)
                    frame[placed] = moved[placed]
            images[t] = normalise(np.clip(frame + rng.normal(0, 0.01, frame.shape), 0, 1))
            for k in range(len(objects)):
                masks[t, k] = ids == k + 1
        if any(masks[0, k].sum() < 30 for k in range(len(objects))):
            return None
        selector = np.zeros(self.max_objects, np.float32)
        selector[: len(objects)] = 1
        return {
            "images": torch.from_numpy(images),
            "masks": torch.from_numpy(masks),
            "selector": torch.from_numpy(selector),
            "name": f"generated {index}",
        }


def _place(shape: np.ndarray, top: float, left: float, height: int, width: int) -> np.ndarray:
    """``shape`` pasted with its corner at integer-rounded (top, left), clipped: (H, W) bool."""
    out = np.zeros((height, width), bool)
    y, x = int(round(top)), int(round(left))
    h, w = shape.shape
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, height), min(x + w, width)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = shape[y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def _place_image(patch: np.ndarray, top: float, left: float, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width, 3), np.float32)
    y, x = int(round(top)), int(round(left))
    h, w = patch.shape[:2]
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, height), min(x + w, width)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def test_weights_config(
    iterations: int,
    *,
    network: str = "tiny",
    lr: float = 2e-3,
    batch_size: int = 4,
    num_frames: int = 6,
    device: str = "auto",
    workers: int = 0,
) -> TrainConfig:
    """Stage 3 only, from scratch: lr ``lr`` dropped x0.1 at 80 %, plain cross-entropy."""
    stage = StageConfig(
        iterations=iterations,
        lr=lr,
        num_frames=num_frames,
        num_ref_frames=3,
        max_objects=3,
        batch_size=batch_size,
        lr_steps=(int(iterations * 0.8),),
        size=128,
        bootstrap_start=iterations,
        bootstrap_end=iterations,
    )
    base = TrainConfig(stages="3", network=network, seed=SEED, device=device, workers=workers)
    return replace(base, stage3=stage, log_every=50, checkpoint_every=max(iterations // 5, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-frames", type=int, default=6)
    parser.add_argument("--network", default="tiny", choices=("tiny", "small"))
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--init", type=Path, default=None, help="weights to start from")
    parser.add_argument(
        "--davis",
        action="store_true",
        help="mix in the shared DAVIS-16 clips except blackswan (the suite's real-frame check)",
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the run folder here")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir (after Ctrl-C)"
    )
    args = parser.parse_args()
    config = test_weights_config(
        args.iterations,
        network=args.network,
        lr=args.lr,
        batch_size=args.batch_size,
        num_frames=args.num_frames,
        device=args.device,
        workers=args.workers,
    )
    if args.init is not None:
        config = replace(config, init_checkpoint=str(args.init.resolve()))

    def factory(stage_name: str, stage: StageConfig, cfg: TrainConfig) -> Dataset:
        count = args.iterations * stage.batch_size
        if not args.davis:
            return GeneratedClips(count, num_frames=stage.num_frames, seed=cfg.seed)
        square = (stage.size, stage.size)  # DAVIS crops are square; a batch needs one size
        davis = VideoSequences(
            DAVIS,
            size=stage.size,
            num_frames=stage.num_frames,
            max_objects=stage.max_objects,
            seed=cfg.seed,
            sequences=[s for s in DAVIS_SEQUENCES if s != "blackswan"],
            repeat=50,
        )
        generated = GeneratedClips(
            len(davis), size=square, num_frames=stage.num_frames, seed=cfg.seed
        )
        return ConcatDataset([generated, davis])

    def report(step: StepLog) -> None:
        if step.iteration % 50 == 0 or step.iteration == step.total:
            print(
                f"{step.iteration}/{step.total} loss {step.loss:.4f} ce {step.ce:.4f} "
                f"dice {step.dice:.4f} {step.it_per_s:.2f} it/s",
                flush=True,
            )

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run_dir or Path(scratch) / "run"
        result = train(config, run_dir, resume=args.resume, dataset_factory=factory, on_step=report)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.weights, args.output)
    state = f"interrupted at iteration {result.iteration}" if result.interrupted else "finished"
    print(f"wrote {args.output} ({state}) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
