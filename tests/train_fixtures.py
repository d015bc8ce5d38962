"""Generated training data shared by the training tests: items in the deva.train.data format."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class MovingShapes(Dataset):
    """Squares of random colours sliding over noise, one to ``max_objects`` per sample (the rest
    padding); items in the deva.train.data format. A pure function of the index."""

    def __init__(self, length: int, num_frames: int, max_objects: int = 2, size: int = 64):
        self.length, self.t, self.n, self.size = length, num_frames, max_objects, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng(index)
        s = self.size
        count = int(rng.integers(1, self.n + 1))
        images = rng.normal(0.0, 0.3, (self.t, 3, s, s)).astype(np.float32)
        masks = np.zeros((self.t, self.n, s, s), np.float32)
        for k in range(count):
            side = int(rng.integers(s // 5, s // 3))
            start, velocity = rng.integers(0, s - side, 2), rng.integers(-4, 5, 2)
            colour = rng.uniform(-2, 2, (3, 1, 1)).astype(np.float32)
            for f in range(self.t):
                y, x = np.clip(start + f * velocity, 0, s - side)
                box = (slice(y, y + side), slice(x, x + side))
                free = masks[f, :k][(slice(None), *box)].sum(0) == 0
                masks[(f, k, *box)] = free
                images[(f, slice(None), *box)] = np.where(
                    free, colour, images[(f, slice(None), *box)]
                )
        selector = (np.arange(self.n) < count).astype(np.float32)
        return {
            "images": torch.from_numpy(images),
            "masks": torch.from_numpy(masks),
            "selector": torch.from_numpy(selector),
            "name": f"shapes-{index}",
        }
