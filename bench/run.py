"""``make bench``: measure speed, accuracy and memory, and rewrite BENCHMARKS.md.

Usage: python -m bench.run [--quick]   (--quick: two sequences, shorter memory runs)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch

from bench import (
    appearance,
    batch_speed,
    consensus_speed,
    eval_speed,
    finetune,
    image_models,
    many_segments,
    memory,
    network_speed,
    overlay_speed,
    sam_video,
    task_speed,
    tracking,
    train_data_speed,
    train_speed,
    unsup_saliency,
)
from bench.flow_speed import measure_flow_speed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, NumPy {np.__version__}, torch {torch.__version__}; "
        f"measured {date.today().isoformat()}"
    )


def flow_section() -> str:
    rows = measure_flow_speed()
    lines = [
        "| objects | flow propagator frames/s | raw DIS (fast, full res) frames/s | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['objects']} | **{row['fps']:.1f}** | {row['raw_dis_fps']:.1f} | "
            f"{row['fps'] / row['raw_dis_fps']:.2f} |"
        )
    return "\n".join(lines)


def cli_section(sequence: str = "bmx-trees") -> str:
    """Wall-clock frames/s of the real command, decoding and writing included."""
    frames = tracking.DAVIS / "JPEGImages" / "480p" / sequence
    count = len(list(frames.glob("*.jpg")))
    lines = ["| command | frames | seconds | frames/s |", "|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as scratch:
        dets = Path(scratch) / "dets"
        from deva.eval.noise import write_noisy_detections

        write_noisy_detections(tracking.DAVIS / "Annotations" / "480p" / sequence, dets)
        deva = shutil.which("deva", path=str(Path(sys.executable).parent)) or "deva"
        runs = [
            ("precomputed", ["--detections", dets, "--no-video"]),
            ("precomputed", ["--detections", dets]),
            ("default (motion)", ["--no-video"]),
            ("default (motion)", []),
        ]
        for label, extra in runs:
            out = Path(scratch) / "out"
            shutil.rmtree(out, ignore_errors=True)
            args = [deva, "track", frames, "-o", out, *extra]
            start = time.perf_counter()
            subprocess.run([str(a) for a in args], check=True, capture_output=True)
            seconds = time.perf_counter() - start
            shown = " ".join(str(a) for a in ["deva track", f"{sequence}/", "-o out", *extra])
            shown = shown.replace(str(dets), "dets/")
            lines.append(
                f"| `{shown}` ({label}) | {count} | {seconds:.1f} | **{count / seconds:.1f}** |"
            )
    return "\n".join(lines)


def consensus_section() -> str:
    rows = consensus_speed.measure()
    lines = [
        "| segments per frame (3-frame clip, 854×480) | consensus ms per clip | segments kept |",
        "|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['segments']} | **{row['ms']:.1f}** | {row['kept']} |")
    return "\n".join(lines)


def memory_section(lengths: tuple[int, ...], network_lengths: tuple[int, ...]) -> str:
    combos = (
        ("flow", "online"),
        ("flow", "semionline"),
        ("network-tiny", "online"),
        ("network-tiny", "semionline"),
        ("appearance", "online"),
        ("appearance", "semionline"),
    )
    rows_file = RESULTS / "memory_rows.jsonl"
    rows = memory.measure(lengths, combos, parallel=2, rows_file=rows_file) + memory.measure(
        network_lengths, (("network", "semionline"),), parallel=2, rows_file=rows_file
    )
    lines = [
        "| propagator | mode | frames | objects created | peak RSS (MiB) | frames/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['propagator']} | {row['mode']} | {row['frames']} | "
            f"{row['objects_created']} | **{row['peak_rss_mib']:.0f}** | {row['fps']:.1f} |"
        )
    lines.append("")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["propagator"], row["mode"]), []).append(row)
    for (propagator, mode), group in groups.items():
        first, last = group[0], group[-1]
        lines.append(
            f"- {propagator}, {mode}: peak RSS {last['frames']} / {first['frames']} frames = "
            f"**{last['peak_rss_mib'] / first['peak_rss_mib']:.3f}** (goal ≤ 1.10)"
        )
    return "\n".join(lines)


def resume_section(num_frames: int, kills: int) -> str:
    row = memory.kill_resume_loop(num_frames, kills)
    return (
        "| frames | resume attempts | killed mid-run | outputs identical | uninterrupted run |\n"
        "|---:|---:|---:|---|---:|\n"
        f"| {row['frames']} | {row['attempts']} | {row['kills']} | "
        f"**{'yes' if row['identical'] else 'NO'}** | {row['uninterrupted_s']:.0f} s |"
    )


@dataclass(frozen=True)
class Section:
    """One table of BENCHMARKS.md: its key (for --only), heading and text, and its measurement."""

    key: str
    text: str
    measure: Callable[[], str]


def sections(quick: bool) -> list[Section]:
    sequences = tracking.SEQUENCES[:2] if quick else tracking.SEQUENCES
    lengths = (100, 300) if quick else (100, 1000, 10000)
    network_lengths = (100, 300) if quick else (100, 2000)
    resume_frames, kills = (300, 3) if quick else (1000, 20)
    return [
        Section(
            "flow",
            (
                "## Flow propagator speed (854×480, DAVIS `bmx-trees`)\n\n`FlowPropagator()` "
                "defaults; per frame: DIS flow both ways, backward warping of every object's "
                "mask, forward-backward occlusion check. Raw DIS measured in the same run.\n"
            ),
            lambda: flow_section(),
        ),
        Section(
            "cli",
            (
                "## End-to-end `deva track` (854×480, 80 frames, decode + track + write)\n\n"
                "The command's defaults at the date below (rows measured before 2026-12-06 ran "
                "the flow propagator, the default until then).\n"
            ),
            lambda: cli_section(),
        ),
        Section(
            "batch",
            (
                "## Many videos: `deva batch` throughput (6 DAVIS clips × 30 frames, 854×480)\n\n"
                "`run_batch` over a folder of six MP4s (decode, the default motion segmenter and "
                "propagator: flow in rows measured before 2026-12-06, appearance since; masks and "
                "annotations written, no overlay video). 1 worker: "
                "in-process, the bench's threads; 2 workers: a local Ray instance, one task per "
                "video with one thread each, its start-up (a few seconds) included.\n"
            ),
            lambda: batch_speed.table(batch_speed.measure()),
        ),
        Section(
            "noisy",
            (
                "## Noisy detections: tracking-by-detection vs online vs semi-online (DAVIS-16)\n"
                "\nDetections made from the ground truth by `deva.eval.noise` (defaults: 7 % "
                "misses, 5 % splits, 1 transient false positive per frame, ±2 px boundary noise, "
                "ids shuffled every frame, seed 0), read from PNG + JSON files in the official "
                "DEVA layout. J&F with the DAVIS definition; each ground-truth object is matched "
                "to the single best predicted id (DAVIS-2017 unsupervised protocol), so every id "
                "change costs. id switches: changes of the id covering most of the object, summed "
                "over sequences (per sequence in brackets). frames/s: tracking only, no writing. "
                "Propagator: `FlowPropagator()`.\n"
            ),
            lambda: tracking.table(tracking.noisy_detection_rows(sequences)),
        ),
        Section(
            "sweep",
            (
                "### Where the consensus helps most (mean J&F over the same clips)\n\nOne noise "
                "parameter varied at a time, the others at their defaults.\n"
            ),
            lambda: tracking.noise_sweep(sequences),
        ),
        Section(
            "consensus",
            (
                "## In-clip consensus time\n\nMatching + exact integer program (HiGHS) + painting "
                "for one clip of 3 frames whose segments are jittered grid cells (10 % dropped "
                "per frame); alignment through the propagator is not included (it costs one "
                "propagation per non-key frame).\n"
            ),
            lambda: consensus_section(),
        ),
        Section(
            "overlay",
            (
                "## Overlay drawing time (`overlay.mp4`, per written frame)\n\n"
                "`deva.io.visualize.overlay` on an 854×480 noise frame: tint, outline and a text "
                "label per object (the 5 shapes of the former timed test, then more discs); "
                "10 timed calls after a warm-up. Formerly a wall-clock assertion in the test "
                "suite (33 ms), which failed on a busy machine.\n"
            ),
            lambda: overlay_speed.table(overlay_speed.measure()),
        ),
        Section(
            "motion",
            (
                "## Motion segmenter + flow, unsupervised (DAVIS-16)\n\n`deva track` with the "
                "default `MotionSegmenter` and `--propagator flow` (the default propagator "
                "before the appearance propagator, whose rows are in the next section), "
                "semi-online (clip 3 every 5). *union*: all "
                "objects form the foreground (DAVIS-16 protocol); *best id*: DAVIS-2017 "
                "unsupervised matching. The motion segmenter alone, run on every frame, is shown "
                "for reference.\n"
            ),
            lambda: tracking.table(tracking.motion_rows(sequences)),
        ),
        Section(
            "appearance",
            (
                "## Appearance propagator vs optical flow, end to end (DAVIS-16 shared clips)\n\n"
                "Side by side in one run, official-definition J&F. *semi-supervised*: the first "
                "frame's mask, propagation only (first and last frames not scored); *noisy "
                "detections*: the detections of the noisy-detection section, semi-online (clip "
                "3 every 5), best single id; *motion segmenter*: `deva track` with the default "
                "segmenter, all objects as the foreground. Goals (issue 14): ≥ 0.80, ≥ 0.75 "
                "and ≥ 0.65. frames/s: tracking only, 854×480, 2 threads.\n"
            ),
            lambda: appearance.quality_table(sequences),
        ),
        Section(
            "appearance_parts",
            (
                "### What each part of the appearance propagator gains (semi-supervised)\n\n"
                "One setting changed at a time from the default.\n"
            ),
            lambda: appearance.parts_table(sequences),
        ),
        Section(
            "appearance_speed",
            (
                "### Appearance propagator speed (854×480, DAVIS `bmx-trees`, propagation only)"
                "\n\nThrough `propagate_ids`, the id-map verb the tracker calls; `--precision "
                "auto` (bfloat16 encoder and affinities on this CPU). 1 object = the true mask; "
                "more objects add grid cells of the rest of the frame. Flow measured in the same "
                "run. Goal: ≥ 10 frames/s for 1-5 objects.\n"
            ),
            lambda: appearance.speed_table(),
        ),
        Section(
            "reid",
            (
                "### Re-identification prototypes (DAVIS-16 shared clips)\n\nCosine similarity "
                "of an object's mean appearance feature at 4 frames spread over its clip, and "
                "of the objects of different clips.\n"
            ),
            lambda: appearance.reid_table(sequences),
        ),
        Section(
            "vos",
            (
                "## Semi-supervised VOS with the flow propagator (DAVIS-16, for reference)\n\n"
                "`deva track FRAMES --init-masks FIRST_FRAME_GT` with no image segmenter: the "
                "first frame's mask propagated by optical flow alone; DAVIS protocol (first and "
                "last frames not scored).\n"
            ),
            lambda: tracking.table(tracking.vos_rows(sequences)),
        ),
        Section(
            "network_speed",
            (
                "## DEVA network propagator speed (CPU, 480×854, official architecture)\n\n"
                "`NetworkPropagator` with the official layer sizes and random weights (speed does "
                "not depend on the values), 6 propagated frames of `bmx-trees` after one "
                "memorized frame; seconds per frame per stage (mask encoding = memory writes, "
                "averaged over all frames). Reference, original code on this machine kind "
                "(REFERENCE-FIGURES.md): 1.65 s/frame for 1 object, measured on another day.\n\n"
                "The second table times each inference rewrite side by side in one run against "
                "deva's reference path (the network as written, float32), which a side-by-side "
                "run against the original code (`python -m bench.compare_original CHECKOUT`, "
                "needs a checkout of the original; last run 2026-11-25) measured at 0.95–1.00× "
                "the original's speed with outputs equal to 2e-5. Differences are to the "
                "reference path's outputs; random weights make near-ties everywhere, so the label "
                "agreement is a pessimistic figure. Fused attention does not apply: the readout "
                "is a top-k softmax (30 of M memory tokens per query), not a dense attention.\n"
            ),
            lambda: (
                network_speed.table(network_speed.measure_network_speed())
                + "\n\n"
                + network_speed.variants_table(network_speed.measure_variants())
            ),
        ),
        Section(
            "image_models",
            (
                "## Learned image models (transformers, CPU)\n\n`bench/image_models.py`, one "
                "854×480 DAVIS frame, 2 threads. Two kinds of row (the weights column). *Tiny "
                "test model*: the random test models of `deva.models.tiny` through "
                "deva's loading and segmenting code (speed of the plumbing, not of real "
                "checkpoints). *Real size, random weights*: estimates for the released checkpoint "
                "named in the row, a random model built in memory from transformers configs, "
                "nothing downloaded (speed does not depend on the values): SAM ViT-B "
                "(`SamConfig()`) and ViT-H (DEVA's default: 1280 wide, 32 layers, 16 heads, "
                "global attention at 7, 15, 23, 31, MLP 5120), SAM 2.1 hiera-tiny "
                "(`Sam2Config()`), Grounding DINO Swin-T (`GroundingDinoConfig()`, BERT-base from "
                "`BertConfig()`, 800/1333 resize), OWLv2 B/16 (`Owlv2Config()`, 960² input), "
                "Mask2Former Swin-T COCO panoptic (Swin-T depths, 133 labels, its processor's "
                "384² input), OneFormer Swin-T ADE20k (`OneFormerConfig()`, 150 labels, 512-pixel "
                "short side) and EoMT-L COCO panoptic 640 (`EomtConfig()`, 133 labels, 640² "
                "padded). No model was skipped: the real tokenizers are downloads, so Grounding "
                "DINO, OWLv2 and OneFormer get word- or letter-level stand-in tokenizers (the "
                "prompt `swan. bird` is a handful of tokens either way; OneFormer's task text is "
                "padded to 77). Real-size rows time deva's code for one frame (processor, model, "
                "post-processing; for SAM the image encoder, run once per frame, and one "
                "64-point decoder batch), one pass after a warm-up pass, or a single pass where "
                "it takes over 20 s. Auto-frame rows are estimates: encoder + 64 decoder batches "
                "(ViT-H has ViT-B's mask decoder, so it uses that batch time); a text-mode frame "
                "costs its detector + the SAM encoder + one box batch. SAM-HQ is timed with its "
                "tiny model only. Auto mode filters most random candidates only by chance, so "
                "its tiny-model time includes upsampling whatever passes.\n"
            ),
            lambda: image_models.table(),
        ),
        Section(
            "train_data",
            (
                "## Training data throughput (spec §7 augmentation, 384×384)\n\nSamples/s of "
                "`deva.train.data` datasets decoded and augmented in one process, one thread "
                "(each DataLoader worker adds about this much).\n"
            ),
            lambda: train_data_speed.table(train_data_speed.measure()),
        ),
        Section(
            "train_speed",
            (
                "## Training speed (`deva train`, CPU)\n\nThe real training loop (unroll, losses, "
                "backward, clipping, AdamW) on synthetic in-memory clips; data loading excluded "
                "(see above). The official-size network is timed over 3 iterations only (seconds "
                "each on CPU); real training needs a GPU.\n"
            ),
            lambda: train_speed.table(train_speed.measure()),
        ),
        Section(
            "finetune",
            (
                "## CPU-scale fine-tune: semi-supervised VOS before / after "
                "(`bench/finetune.py`)\n\n"
                "`deva train` (stage 0 on every 5th frame of 4 DAVIS-16 clips as static images, "
                "then stage 3 on those videos) on this CPU, minutes not days; scored with "
                "`deva track --init-masks` (first-frame ground truth, DAVIS protocol) on the 2 "
                "held-out clips and the 4 training clips. It shows that training learns on real "
                "video at CPU scale; it is not the paper's training and says nothing about the "
                "official weights.\n"
            ),
            lambda: finetune.finetune_section(),
        ),
        Section(
            "saliency",
            (
                "## Unsupervised DAVIS-16 from saliency maps (`deva run-task davis16-saliency`)\n"
                "\nSoft saliency-like maps made from the ground truth by "
                "`bench/unsup_saliency.py` (seed 0: boundary noise, false blobs, blur, pixel "
                "noise, 10 % of frames empty). Associated consensus over 10 sampled frames "
                "aligned by the flow propagator, then the soft consensus propagated backward and "
                "forward with `FlowPropagator()`; against thresholding each frame's own map at "
                "0.5. DAVIS-16 union protocol, all six clips.\n\n"
                "Why it loses here: the 10 sampled frames lie up to a whole clip apart, and the "
                "flow propagator aligns a frame to the keyframe with one optical flow across "
                "that gap, which fails for anything but slow motion. The uniform weights (1/10, "
                "no scores) then leave the consensus below 0.5 almost everywhere: on bmx-trees "
                "and breakdance even the keyframe comes out empty, hence 0.000. The protocol "
                "needs a propagator that matches distant frames (the DEVA network with trained "
                "weights); with flow, per-frame thresholding is the better choice.\n"
            ),
            lambda: unsup_saliency.table(unsup_saliency.measure()),
        ),
        Section(
            "task_speed",
            (
                "## Time per task run (`deva run-task`, end to end, 854×480)\n\nEach benchmark "
                "protocol through the real command in a fresh process (`python -m deva.cli "
                "run-task TASK ...`: start-up, reading, tracking or consensus, writing the "
                "benchmark's layout), default options and so `FlowPropagator()`, on fixtures in "
                "each task's real layout built by `bench/task_speed.py` from the first "
                f"{task_speed.FRAMES} frames of DAVIS "
                f"{' and '.join(f'`{s}`' for s in task_speed.SEQUENCES)}: panoptic / noisy "
                "instance detections, noisy "
                "saliency maps, two soft masks per video with `scores.csv`. BURST tracks every "
                "3rd frame (the paper's protocol) and merges into `burst_predictions.json`; "
                "ref-youtube runs each of the 2 expressions on its own and zips the result. "
                "frames/s = frames written / seconds.\n"
            ),
            lambda: task_speed.table(task_speed.measure()),
        ),
        Section(
            "eval_speed",
            (
                "## Benchmark evaluators: `deva eval vipseg` / `deva eval burst` speed\n\n"
                "Fixtures in the official layouts built from the six DAVIS clips at 854×480 by "
                "`bench/eval_speed.py` (VIPSeg: one thing + two stuff regions, every frame; "
                "BURST: one track, every 3rd frame annotated); the prediction shifts the object 3 "
                "px and switches its id halfway. Reading the PNG / JSON files included; one "
                "process.\n"
            ),
            lambda: eval_speed.table(eval_speed.measure()),
        ),
        Section(
            "segments",
            (
                "## Many segment ids (`deva track --detections`, 2 frames, 854×480)\n\n"
                "Detections: one grid of N cells per frame under scattered ids up to 2²⁴ "
                "(RGB-coded PNGs), the same picture twice. Semi-online defaults, flow "
                "propagator, all outputs written (masks, annotations, overlay video). Each row "
                "is a fresh process; peak RSS includes Python, torch and OpenCV "
                "(`bench/many_segments.py`).\n"
            ),
            lambda: many_segments.table(many_segments.measure()),
        ),
        Section(
            "sam_video",
            (
                "## SAM-family models (CPU, random weights of the released sizes)\n\n"
                "`bench/sam_video.py`, one row per fresh process (peak RSS is the row's own, "
                "model construction included), 854×480 random frames, 2 threads. Propagators: "
                "`SamVideoPropagator` with 2 objects memorized, one warm-up frame, then the mean "
                "of 2 frames (1 at full size). Text mode: `ConceptSegmenter` with one phrase "
                "(letter-level stand-in tokenizer; the image encoder dominates). EdgeTAM's "
                "released RepViT backbone needs timm, which needs torchvision, which does not "
                "load with this CPU torch: its row runs EdgeTAM's own memory side (perceiver "
                "resampler, 2-layer memory attention) on SAM 2.1's hiera-tiny backbone as a "
                "stand-in (same channels and feature sizes), so it is not EdgeTAM's real speed. "
                "Session: tensors held by the SAM 2 propagator's running session, one run of "
                "2,000 frames merging every 5, with the tiny test model at 64² (the rows "
                "measure growth, not speed): bounded.\n"
            ),
            lambda: sam_video.table(sam_video.measure()),
        ),
        Section(
            "memory",
            (
                "## Memory on long streams (rendered 854×480 demo stream, all outputs written)\n\n"
                "Each row is a fresh process (two at a time, so frames/s is under load; rows are "
                "kept in `bench/results/memory_rows.jsonl` as they finish). "
                "Detections: the stream's true objects under ids "
                "shuffled every frame (objects enter and leave every 120 frames, so objects are "
                "created and deleted all along). Flow runs at full 854×480. The network runs at a "
                "160-pixel working size, since on CPU its top-k readout over a full-size memory "
                "costs ~0.5 s per frame and bucket: `network` is the official architecture "
                "(random weights), `network-tiny` the test architecture (same memory policy, so "
                "the same token counts). Overlay video and masks written.\n"
            ),
            lambda: memory_section(lengths, network_lengths),
        ),
        Section(
            "resume",
            (
                "## Kill and resume (`deva track --checkpoint-every 50`, SIGKILL at random "
                "moments)\n\nDefault segmenter and propagator on the 854×480 stream encoded as "
                "MP4; each attempt is `deva track ... --resume`, killed after a random time; a "
                "last attempt runs to the end. Masks, annotations.json and overlay.mp4 compared "
                "byte for byte with an uninterrupted run.\n"
            ),
            lambda: resume_section(resume_frames, kills),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sequences and frames")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated section keys to measure again; the others come from "
        "bench/results/ (their last measurement, dated)",
    )
    args = parser.parse_args()
    chosen = sections(args.quick)
    keys = {section.key for section in chosen}
    only = {k for k in args.only.split(",") if k}
    if only - keys:
        parser.error(f"unknown section(s) {sorted(only - keys)}; known: {sorted(keys)}")
    RESULTS.mkdir(exist_ok=True)
    parts = [
        "# Benchmarks\n",
        "Written by `make bench` (`python -m bench.run`); every number below comes from that "
        "script. `python -m bench.run --only KEY,...` re-measures some sections and keeps the "
        "others from `bench/results/`; each section says when and where it was measured. "
        "Speeds are CPU, 2 threads unless said.\n",
    ]
    for section in chosen:
        cached = RESULTS / f"{section.key}.md"
        if not only or section.key in only:
            print(f"measuring {section.key} ...", file=sys.stderr, flush=True)
            measured = f"{section.measure()}\n\n*Measured: {machine()}.*\n"
            cached.write_text(measured)
        parts.append(section.text)
        if cached.is_file():
            parts.append(cached.read_text())
        else:
            parts.append(f"*Not measured yet: `python -m bench.run --only {section.key}`.*\n")
    text = "\n".join(parts)
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
