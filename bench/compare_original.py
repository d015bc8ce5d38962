"""deva's DEVA propagation network and memory against the original implementation, same weights.

Needs a checkout of the original code (github.com/hkchengrex/Tracking-Anything-with-DEVA, CC
BY-NC-SA; nothing of it is part of deva). Its dependencies that the VOS path never calls (e.g.
``pulp``) are replaced by empty modules when missing. Both implementations are imported in one
process: the original's ``deva`` package is loaded under its own name and kept apart from ours
by swapping ``sys.modules``.

One random checkpoint in the official layout (``torch.manual_seed(0); PropagationNetwork()``)
is loaded strictly into both networks. On real 854x480 DAVIS frames (padded to 864x480), the
script reports max |difference| per stage: image encoding (f16, f8, f4, key, shrinkage,
selection), mask encoding (value, deep-updated sensory), memory readout (top-k 30), decoder
(sensory, logits, probabilities); then semi-supervised runs (frame 0 ground truth memorised,
later frames propagated) of deva's ``NetworkPropagator`` against the original's
``DEVAInferenceCore.step``, per frame, under several memory policies (``--policies``); and
seconds per frame per stage of both, paired within each repeat. "deva" is the propagator's
default (``optimize=True``: BatchNorm folded into the convs, channels-last weights);
``--options`` adds deva without either rewrite, with each alone, with bf16 autocast and, with
``--compile``, torch.compile.

Reading the numbers: with random weights all similarities lie within ~1e-2 of each other, so
which memory tokens make the top 30 is decided by float rounding (both sides use the same
cancelling expansion, summed in a different order). Probability differences of ~1e-5 with the
default policy, and up to ~1e-4 when consolidation runs every other frame (usage counts then
differ by a near-tie swap and a prototype or two changes), are that, not a code-path
difference. Known deliberate differences: the original's top-k softmax does not subtract the
maximum (DEVA-SPEC Appendix B; ``--orig-subtract-max`` shifts the similarity before it, which
does not change the top-k choice), and with T_max = T_min + 1 the original never removes the
consolidated frames from working memory (``t2-3`` shows it; deva follows the spec).

Usage:
    python -m bench.compare_original /path/to/Tracking-Anything-with-DEVA \
        [--frames 25] [--policies defaults,t2-4,every1,t2-3] [--timing-frames 19] \
        [--repeats 2] [--threads 2] [--options [--compile]] [--orig-subtract-max]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import time
import types
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.flow_speed import DAVIS, load_clip
from deva.propagation.network.inference import prepare_for_inference
from deva.propagation.network.memory import MemoryConfig
from deva.propagation.network.model import PropagationNetwork
from deva.propagation.network.propagator import MEAN, STD, NetworkPropagator, _pad16
from deva.propagation.network.readout import read_memory

_CONFIG = {"pix_feat_dim": 512, "key_dim": 64, "value_dim": 512, "chunk_size": -1}


# ---------------------------------------------------------------------------- loading
def _is_deva(name: str) -> bool:
    return name == "deva" or name.startswith("deva.")


def _import_with_stubs(name: str) -> types.ModuleType:
    """Import ``name``, replacing missing third-party modules by empty ones."""
    for _ in range(20):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is None or _is_deva(err.name):
                raise
            sys.modules[err.name] = types.ModuleType(err.name)
    raise ImportError(f"too many missing modules importing {name}")


def load_original(checkout: Path) -> types.SimpleNamespace:
    """The original ``DEVA`` network class, ``DEVAInferenceCore`` and ``memory_utils`` module,
    imported from ``checkout`` without disturbing our ``deva`` package."""
    if not (checkout / "deva" / "model" / "network.py").is_file():
        raise SystemExit(f"{checkout} is not a checkout of Tracking-Anything-with-DEVA")
    ours = {k: sys.modules.pop(k) for k in list(sys.modules) if _is_deva(k)}
    sys.path.insert(0, str(checkout))
    try:
        network = _import_with_stubs("deva.model.network")
        core = _import_with_stubs("deva.inference.inference_core")
        memory_utils = importlib.import_module("deva.model.memory_utils")
        memory_manager = importlib.import_module("deva.inference.memory_manager")
    finally:
        sys.path.remove(str(checkout))
        for k in [k for k in sys.modules if _is_deva(k)]:
            del sys.modules[k]
        sys.modules.update(ours)
    return types.SimpleNamespace(
        DEVA=network.DEVA,
        InferenceCore=core.DEVAInferenceCore,
        memory_utils=memory_utils,
        memory_manager=memory_manager,
    )


def patch_subtract_max(original: types.SimpleNamespace) -> None:
    """Make the original's top-k softmax subtract the per-position maximum first (deva's
    documented fix): the similarity is shifted before the original ``do_softmax`` runs, which
    leaves the top-k choice unchanged and equals subtracting it from the top-k values."""
    do_softmax = original.memory_utils.do_softmax

    def shifted(similarity: torch.Tensor, top_k: int | None = None, *args, **kwargs):
        if top_k is not None:
            similarity = similarity - similarity.amax(dim=1, keepdim=True)
        return do_softmax(similarity, top_k, *args, **kwargs)

    for module in (original.memory_utils, original.memory_manager):
        module.do_softmax = shifted


def build_pair(original: types.SimpleNamespace) -> tuple[PropagationNetwork, torch.nn.Module]:
    """deva's network with the seed-0 random weights, and the original loaded strictly from
    its state dict (the official checkpoint layout)."""
    torch.manual_seed(0)
    ours = PropagationNetwork().eval()
    theirs = original.DEVA(_CONFIG).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


# ---------------------------------------------------------------------------- inputs
def normalise(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) ImageNet-normalised float, as both pipelines do."""
    tensor = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).div(255)
    return (tensor - MEAN[0]) / STD[0]


def _diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = torch.as_tensor(np.asarray(a)).float(), torch.as_tensor(np.asarray(b)).float()
    return float((a - b).abs().max())


# ---------------------------------------------------------------------------- stages
@torch.inference_mode()
def compare_stages(
    original: types.SimpleNamespace,
    ours: PropagationNetwork,
    theirs: torch.nn.Module,
    images: list[np.ndarray],
    mask: np.ndarray,
) -> dict[str, float]:
    """Max |deva - original| per stage, each stage fed the original's inputs."""
    padded = [_pad16(normalise(image)[None])[0] for image in images[:2]]
    out: dict[str, float] = {}
    ms_t, feat = theirs.encode_image(padded[0])
    key_t, shr_t, sel_t = theirs.transform_key(feat)
    ms_o, key_o, shr_o, sel_o = ours.encode_image(padded[0])
    for name, a, b in zip(
        ("f16", "f8", "f4", "key", "shrinkage", "selection"),
        (*ms_o, key_o, shr_o, sel_o),
        (*ms_t, key_t, shr_t, sel_t),
        strict=True,
    ):
        out[f"image: {name}"] = _diff(a, b)

    masks = _pad16(torch.from_numpy(mask.astype(np.float32))[None, None])[0]
    zeros = torch.zeros(1, 1, 512, *key_t.shape[-2:])
    value_t, sens_t = theirs.encode_mask(padded[0], ms_t, zeros, masks)
    value_o, sens_o = ours.encode_mask(padded[0], ms_t[0], zeros, masks)
    out["mask: value"] = _diff(value_o, value_t)
    out["mask: sensory"] = _diff(sens_o, sens_t)

    ms1, feat1 = theirs.encode_image(padded[1])
    key1, _, sel1 = theirs.transform_key(feat1)
    readout_o, _ = read_memory(key1, sel1, key_t.flatten(2), shr_t.flatten(1), value_t.flatten(3))
    readout_t = _orig_readout(original, key1, sel1, key_t, shr_t, value_t)
    out["readout (top-k 30)"] = _diff(readout_o, readout_t)

    sens_dt, logits_t, probs_t = theirs.segment(ms1, readout_t, sens_t, masks)
    sens_do, logits_o, probs_o = ours.segment(ms1, readout_t, sens_t, masks)
    out["decoder: sensory"] = _diff(sens_do, sens_dt)
    out["decoder: logits"] = _diff(logits_o, logits_t)
    out["decoder: probabilities"] = _diff(probs_o, probs_t)
    out["decoder: argmax agreement"] = float(
        (probs_o.argmax(1) == probs_t.argmax(1)).float().mean()
    )
    return out


def _orig_readout(original, key1, sel1, key0, shr0, value0) -> torch.Tensor:
    """Readout with the original's get_similarity / do_softmax (top-k 30)."""
    mu = original.memory_utils
    sim = mu.get_similarity(key0, shr0, key1, sel1)
    affinity = mu.do_softmax(sim, top_k=30)
    values = value0[0].flatten(2)  # (N, CV, M)
    out = values.reshape(-1, values.shape[-1]) @ affinity[0]
    return out.view(1, values.shape[0], values.shape[1], *key1.shape[-2:])


# ---------------------------------------------------------------------------- full runs
@dataclass
class RunResult:
    prob_diff: list[float]  # per propagated frame
    argmax_agreement: list[float]
    nan_frames_original: int


def original_config(memory: MemoryConfig) -> dict:
    return {
        **_CONFIG,
        "mem_every": memory.mem_every,
        "top_k": memory.top_k,
        "enable_long_term": memory.long_term,
        "enable_long_term_count_usage": True,
        "max_mid_term_frames": memory.max_mid_term_frames,
        "min_mid_term_frames": memory.min_mid_term_frames,
        "num_prototypes": memory.num_prototypes,
        "max_long_term_elements": memory.max_long_term_elements,
    }


@torch.inference_mode()
def compare_run(
    original: types.SimpleNamespace,
    ours: PropagationNetwork,
    theirs: torch.nn.Module,
    images: list[np.ndarray],
    mask: np.ndarray,
    memory: MemoryConfig,
) -> RunResult:
    """Memorise frame 0's mask, propagate the rest: deva vs the original, per frame."""
    propagator = NetworkPropagator(ours, memory=memory)
    core = original.InferenceCore(theirs, original_config(memory))
    label = torch.from_numpy(mask.astype(np.int64))
    core.step(normalise(images[0]), label, [1])
    propagator.memorize(images[0], mask[None].astype(np.uint8), [1])
    result = RunResult([], [], 0)
    for image in images[1:]:
        probs_t = core.step(normalise(image)).numpy()
        probs_o = propagator.propagate(image)
        result.nan_frames_original += int(np.isnan(probs_t).any())
        result.prob_diff.append(_diff(probs_o, probs_t))
        result.argmax_agreement.append(float((probs_o.argmax(0) == probs_t.argmax(0)).mean()))
    return result


# ---------------------------------------------------------------------------- timing
STAGES = ("image encoding", "readout", "decoding", "mask encoding")


@contextmanager
def _timed(target: object, attribute: str, store: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds spent in ``target.attribute`` to ``store[name]`` while active."""
    function = getattr(target, attribute)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        store[name] += time.perf_counter() - start
        return result

    setattr(target, attribute, wrapper)
    try:
        yield
    finally:
        delattr(target, attribute)


@torch.inference_mode()
def time_original(original, theirs, images, mask, memory: MemoryConfig) -> dict[str, float]:
    """s/frame of ``DEVAInferenceCore.step`` on frames 1.. (frame 0's mask given), per stage."""
    core = original.InferenceCore(theirs, original_config(memory))
    core.step(normalise(images[0]), torch.from_numpy(mask.astype(np.int64)), [1])
    stages: dict[str, float] = defaultdict(float)
    net, store = core.network, core.image_feature_store
    inputs = [normalise(image) for image in images[1:]]  # JPEG decoding/normalising: not timed
    with (
        _timed(store, "_encode_feature", stages, "image encoding"),
        _timed(core.memory, "match_memory", stages, "readout"),
        _timed(net, "segment", stages, "decoding"),
        _timed(net, "encode_mask", stages, "mask encoding"),
    ):
        start, cpu = time.perf_counter(), time.process_time()
        for tensor in inputs:
            core.step(tensor)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = len(inputs)
    return {
        "total": total / frames,
        "cpu": cpu / frames,
        **{k: v / frames for k, v in stages.items()},
    }


@torch.inference_mode()
def time_deva(
    ours: PropagationNetwork,
    images: list[np.ndarray],
    mask: np.ndarray,
    memory: MemoryConfig,
    context: Callable[[], AbstractContextManager] = nullcontext,
    optimize: bool = True,
) -> tuple[dict[str, float], list[np.ndarray]]:
    """s/frame of ``NetworkPropagator.propagate`` on frames 1.. (includes the uint8 -> float
    conversion and the copy back to numpy), per stage, and its outputs. ``context`` wraps the
    whole run (e.g. autocast); ``optimize`` is the propagator's own inference rewrite."""
    propagator = NetworkPropagator(ours, memory=memory, optimize=optimize)
    stages: dict[str, float] = defaultdict(float)
    net = propagator.network
    outputs = []
    with context():
        propagator.memorize(images[0], mask[None].astype(np.uint8), [1])
        with (
            _timed(net, "encode_image", stages, "image encoding"),
            _timed(propagator.memory, "read", stages, "readout"),
            _timed(net, "segment", stages, "decoding"),
            _timed(net, "encode_mask", stages, "mask encoding"),
        ):
            start, cpu = time.perf_counter(), time.process_time()
            for image in images[1:]:
                outputs.append(propagator.propagate(image))
            total, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = len(images) - 1
    timing = {"total": total / frames, "cpu": cpu / frames}
    return {**timing, **{k: v / frames for k, v in stages.items()}}, outputs


def _bf16() -> AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def deva_variants(ours: PropagationNetwork, with_compile: bool) -> dict[str, tuple]:
    """Name -> (network, context, optimize) of the variants timed against "deva" (its default:
    BatchNorm folded + channels-last), so each rewrite's share of the gain shows."""
    variants = {
        "deva, plain network (optimize=False)": (ours, nullcontext, False),
        "deva, BatchNorm folded only": (
            prepare_for_inference(ours, channels_last=False),
            nullcontext,
            False,
        ),
        "deva, channels-last only": (
            copy.deepcopy(ours).to(memory_format=torch.channels_last),
            nullcontext,
            False,
        ),
        "deva + bf16 autocast": (ours, _bf16, True),
    }
    if with_compile:
        compiled = prepare_for_inference(ours)
        for name in ("pixel_encoder", "mask_encoder", "mask_decoder"):
            setattr(compiled, name, torch.compile(getattr(compiled, name)))
        variants["deva + torch.compile"] = (compiled, nullcontext, False)
    return variants


def _range(values: list[float], digits: int = 3) -> str:
    low, high = min(values), max(values)
    if round(low, digits) == round(high, digits):
        return f"{low:.{digits}f}"
    return f"{low:.{digits}f}–{high:.{digits}f}"


def timing_table(rows: dict[str, list[dict[str, float]]]) -> str:
    """Markdown: wall s/frame in total and per stage, process CPU s/frame (min–max over
    repeats), and the speed-up over the original (its time / this time, paired within each
    repeat; CPU time is less disturbed by other jobs on a shared machine)."""
    lines = [
        "| implementation | s/frame | "
        + " | ".join(STAGES)
        + " | CPU s/frame | speed-up (wall) | speed-up (CPU) |",
        "|---|---:|" + "---:|" * len(STAGES) + "---:|---:|---:|",
    ]
    for name, runs in rows.items():
        cells = " | ".join(_range([r.get(s, 0.0) for r in runs]) for s in STAGES)
        pairs = list(zip(rows["original"], runs, strict=True))
        wall = _range([o["total"] / r["total"] for o, r in pairs], 2)
        cpu = _range([o["cpu"] / r["cpu"] for o, r in pairs], 2)
        lines.append(
            f"| {name} | {_range([r['total'] for r in runs])} | {cells} | "
            f"{_range([r['cpu'] for r in runs])} | {wall}x | {cpu}x |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main
POLICIES = {
    "defaults": ("mem_every 5, top_k 30, long-term on, T_min 5 / T_max 10", MemoryConfig()),
    "t2-4": (
        "T_min 2 / T_max 4 (consolidates at frame 15)",
        MemoryConfig(min_mid_term_frames=2, max_mid_term_frames=4),
    ),
    "every1": (
        "mem_every 1, T_min 2 / T_max 4 (consolidates every 2nd frame)",
        MemoryConfig(mem_every=1, min_mid_term_frames=2, max_mid_term_frames=4),
    ),
    "t2-3": (
        "T_min 2 / T_max 3 (the original keeps the candidates in working memory here)",
        MemoryConfig(min_mid_term_frames=2, max_mid_term_frames=3),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="checkout of Tracking-Anything-with-DEVA")
    parser.add_argument("--sequence", default="bmx-trees")
    parser.add_argument("--frames", type=int, default=25, help="frames of the accuracy runs")
    parser.add_argument(
        "--policies", default="defaults,t2-4", help=f"comma list of {', '.join(POLICIES)}"
    )
    parser.add_argument("--timing-frames", type=int, default=19, help="0 = skip timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--options", action="store_true", help="also time deva's speed options")
    parser.add_argument("--compile", action="store_true", help="with --options: torch.compile")
    parser.add_argument("--orig-subtract-max", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # the original's cuda.amp calls

    original = load_original(args.checkout.resolve())
    if args.orig_subtract_max:
        patch_subtract_max(original)
    ours, theirs = build_pair(original)
    images, mask = load_clip(args.sequence, max(args.frames, args.timing_frames + 1), DAVIS)

    print(f"## stages ({args.sequence}, frame 0 -> 1): max |deva - original|", flush=True)
    for name, value in compare_stages(original, ours, theirs, images, mask).items():
        print(f"  {name:28s} {value:.3g}", flush=True)

    for key in filter(None, args.policies.split(",")):
        label, policy = POLICIES[key]
        result = compare_run(original, ours, theirs, images[: args.frames], mask, policy)
        print(f"## run: {label}; original frames with NaN: {result.nan_frames_original}")
        for index, (d, a) in enumerate(
            zip(result.prob_diff, result.argmax_agreement, strict=True), start=1
        ):
            print(f"  frame {index:2d}: max|dprob| {d:.3g}  argmax agreement {a:.6f}", flush=True)

    if args.timing_frames:
        clip = images[: args.timing_frames + 1]
        variants = deva_variants(ours, args.compile) if args.options else {}
        if args.compile:  # compile before timing
            time_deva(
                variants["deva + torch.compile"][0], clip[:2], mask, MemoryConfig(), optimize=False
            )
        rows: dict[str, list[dict[str, float]]] = defaultdict(list)
        agreement: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for _ in range(args.repeats):
            rows["original"].append(time_original(original, theirs, clip, mask, MemoryConfig()))
            timing, reference = time_deva(ours, clip, mask, MemoryConfig())
            rows["deva"].append(timing)
            for name, (network, context, optimize) in variants.items():
                timing, outputs = time_deva(
                    network, clip, mask, MemoryConfig(), context, optimize=optimize
                )
                rows[name].append(timing)
                agreement[name].append(
                    (
                        max(_diff(a, b) for a, b in zip(outputs, reference, strict=True)),
                        min(
                            float((a.argmax(0) == b.argmax(0)).mean())
                            for a, b in zip(outputs, reference, strict=True)
                        ),
                    )
                )
        print(
            f"## seconds per frame, frames 1-{args.timing_frames}, {args.threads} threads, "
            f"{args.repeats} repeats (min–max)"
        )
        print(timing_table(rows))
        for name, values in agreement.items():
            print(
                f"{name}: max |dprob| vs deva {max(v[0] for v in values):.3g}, "
                f"min argmax agreement {min(v[1] for v in values):.6f}"
            )


if __name__ == "__main__":
    main()
