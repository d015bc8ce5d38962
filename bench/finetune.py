"""A CPU-scale fine-tune of the propagation network on DAVIS-16 clips, scored as semi-supervised
VOS on clips it did not see.

``deva train`` (``load_config`` + ``train``, as the CLI runs it) on 4 of the 6 shared DAVIS-16
clips: stage 0 on every 5th frame of them as static images, then stage 3 on the videos. The
network is the "tiny" architecture (~76k parameters) at 128 px crops, from random init (or
from ``--init`` weights of the same architecture, e.g. ones trained on generated clips by
``bench/train_test_weights.py``). Before and after are scored with ``deva track``'s first-frame
protocol (given masks, no image segmenter) on the 2 held-out clips and the 4 training clips;
the flow propagator is the reference.

This shows that the training code learns on real video at a scale a CPU affords; it is not the
paper's training (ImageNet-initialised ResNets, 230k iterations on static sets, YouTube-VOS
and DAVIS at 384 px on GPUs), and its numbers say nothing about the official weights.

Usage: python -m bench.finetune [--iterations 75] [--init tests/data/tiny_propagation.pth]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bench import tracking
from deva.config import TrackerConfig
from deva.eval.davis import evaluate_sequence
from deva.eval.identity import count_id_switches
from deva.propagation.base import Propagator
from deva.propagation.flow import FlowPropagator
from deva.propagation.network.checkpoint import build_network
from deva.propagation.network.propagator import NetworkPropagator
from deva.tracker import Tracker
from deva.train.config import load_config
from deva.train.trainer import build_training_network, train

TRAIN = ("blackswan", "camel", "car-roundabout", "dog")
TEST = ("bmx-trees", "breakdance")
NETWORK_SIZE = 160
"""Working short side for the network (trained on 128 px crops); flow runs at its default."""
INIT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tiny_propagation.pth"


@dataclass(frozen=True)
class Settings:
    """What one fine-tune run uses; ``iterations`` per stage."""

    network: str = "tiny"
    size: int = 128
    iterations: int = 75
    batch_size: int = 4
    video_frames: int = 5
    lr: float = 1e-3
    every: int = 5
    seed: int = 0


def static_folder(davis: Path, sequences: tuple[str, ...], every: int, out: Path) -> Path:
    """Every ``every``-th frame of ``sequences`` as ``<seq>_<frame>.jpg`` + ``.png`` links."""
    out.mkdir(parents=True, exist_ok=True)
    for sequence in sequences:
        for jpeg in sorted((davis / "JPEGImages" / "480p" / sequence).glob("*.jpg"))[::every]:
            png = davis / "Annotations" / "480p" / sequence / f"{jpeg.stem}.png"
            (out / f"{sequence}_{jpeg.stem}.jpg").symlink_to(jpeg)
            (out / f"{sequence}_{png.stem}.png").symlink_to(png)
    return out


def write_config(path: Path, settings: Settings, davis: Path, static: Path, init: Path | None):
    """The run as a ``deva train`` TOML file (what a user would write)."""
    s = settings
    sequences = ", ".join(f'"{name}"' for name in TRAIN)
    common = (
        f"iterations = {s.iterations}\nlr = {s.lr}\nbatch_size = {s.batch_size}\n"
        f"size = {s.size}\nlr_steps = [{int(s.iterations * 0.8)}]\n"
        f"bootstrap_start = {s.iterations}\nbootstrap_end = {s.iterations}\n"
    )
    path.write_text(
        f'stages = "03"\nnetwork = "{s.network}"\n'
        f'init_checkpoint = "{init or ""}"\nseed = {s.seed}\ndevice = "cpu"\nworkers = 1\n'
        f"log_every = 25\ncheckpoint_every = {10 * s.iterations}\n\n"
        f"[stage0]\n{common}num_frames = 3\nmax_objects = 1\n"
        f'[[stage0.data]]\nroot = "{static}"\n\n'
        f"[stage3]\n{common}num_frames = {s.video_frames}\nnum_ref_frames = 3\nmax_objects = 1\n"
        f'[[stage3.data]]\nroot = "{davis}"\nlayout = "davis"\nsequences = [{sequences}]\n',
        encoding="utf-8",
    )


def vos_rows(
    label: str, make_propagator: Callable[[], Propagator], config: TrackerConfig
) -> list[tracking.Row]:
    """First-frame-mask VOS on all six clips (DAVIS protocol, first and last frames unscored)."""
    rows = []
    for sequence in TEST + TRAIN:
        gt = tracking.ground_truth(sequence)

        def first_mask(frame, gt=gt):
            return gt[0] if frame.index == 0 else None

        tracker = Tracker(None, make_propagator(), config)
        frames = tracking.frames_of(sequence)
        pred, fps = tracking.timed_ids(tracker.run(frames, given_masks=first_mask))
        s = evaluate_sequence(pred, gt, match="identity", skip_first_last=True, name=sequence)
        switches = count_id_switches(pred, gt > 0)
        rows.append(
            tracking.Row(label, sequence, s.jf_mean, s.j_mean, s.f_mean, fps, len(pred), switches)
        )
    return rows


def network_propagator(weights: Path | None, network: str) -> Callable[[], Propagator]:
    if weights is None:
        from deva.train.config import TrainConfig

        model = build_training_network(TrainConfig(network=network)).eval()
    else:
        model = build_network(weights, "cpu")
    return lambda: NetworkPropagator(model)


def measure(settings: Settings = Settings(), init: Path | None = None) -> dict:
    """Train, then score flow / before / after; returns rows and the run's facts."""
    torch.set_num_threads(2)
    davis = tracking.DAVIS
    small = TrackerConfig(size=NETWORK_SIZE)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        static = static_folder(davis, TRAIN, settings.every, work / "static")
        config_path = work / "train.toml"
        write_config(config_path, settings, davis, static, init)
        start = time.perf_counter()
        result = train(load_config(config_path), work / "run")
        train_seconds = time.perf_counter() - start
        weights = work / "after.pth"
        weights.write_bytes(result.weights.read_bytes())
        before = "random init" if init is None else f"`{init.name}` (generated clips only)"
        rows = vos_rows("flow propagator (480 px)", FlowPropagator, TrackerConfig())
        rows += vos_rows(
            f"network before: {before}", network_propagator(init, settings.network), small
        )
        rows += vos_rows(
            "network after: + fine-tune on the 4 train clips",
            network_propagator(weights, settings.network),
            small,
        )
    return {"rows": rows, "train_seconds": train_seconds, "settings": settings, "init": init}


def table(result: dict) -> str:
    s: Settings = result["settings"]
    lines = []
    for title, names in (("held-out clips", TEST), ("training clips", TRAIN)):
        rows = [r for r in result["rows"] if r.sequence in names]
        lines += [f"**{title}** ({', '.join(names)})", "", tracking.table(rows), ""]
    lines.append(
        f"Fine-tune: `{s.network}` network, stage 0 {s.iterations} iterations (3-frame clips from "
        f"every {s.every}th frame of the train clips) + stage 3 {s.iterations} iterations "
        f"({s.video_frames}-frame clips), batch {s.batch_size}, {s.size}×{s.size} crops, AdamW "
        f"lr {s.lr:g} (×0.1 at 80 %), seed {s.seed}; **{result['train_seconds'] / 60:.1f} min** "
        "of training (wall time, CPU, 2 threads, data loading included). The network tracks at a "
        f"{NETWORK_SIZE} px short side; the flow rows equal the VOS section's."
    )
    return "\n".join(lines)


def finetune_section() -> str:
    """The BENCHMARKS.md section (init from the generated-clip weights when present)."""
    return table(measure(init=INIT if INIT.is_file() else None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=Settings.iterations)
    parser.add_argument("--network", default=Settings.network, choices=("tiny", "small"))
    parser.add_argument("--init", type=Path, default=INIT if INIT.is_file() else None)
    args = parser.parse_args()
    settings = replace(Settings(), iterations=args.iterations, network=args.network)
    print(table(measure(settings, args.init)))


if __name__ == "__main__":
    main()
