"""Run a batch's videos as Ray tasks (one per video) on a local Ray instance or a cluster.

Kept apart from ``deva.batch`` so Ray is imported only when asked for. Every task tracks one
video with one CPU thread (torch, OpenCV and OpenMP), so ``workers`` tasks share ``workers``
cores without oversubscribing them. On a cluster, the input and output paths must be visible
from every node (a shared filesystem) and deva must be installed there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from deva.batch import TrackOptions, VideoJob, VideoRecord, track_video
from deva.errors import DevaError, install_hint

_SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
NO_RAY_WARNING = (
    f"ray is not installed ({install_hint('cluster')}): "
    "running the videos one after another in-process"
)

log = logging.getLogger(__name__)


def local_workers(workers: int) -> int:
    """The workers a local batch (no cluster address) really gets: ``workers`` when Ray
    imports; otherwise 1 after one warning, and the batch runs in-process as with --workers 1."""
    try:
        import ray  # noqa: F401
    except ImportError:
        log.warning(NO_RAY_WARNING)
        return 1
    return workers


def run_with_ray(
    jobs: Sequence[VideoJob],
    options: TrackOptions,
    *,
    workers: int,
    address: str | None,
    on_done: Callable[[VideoRecord], None],
) -> None:
    """Track ``jobs`` in parallel; ``on_done`` is called in this process as each one finishes.

    A Ray instance already running in this process is used as is; otherwise one is started
    (``address`` None: a local instance with ``workers`` CPUs and no dashboard) and shut down
    at the end. A task whose worker dies is recorded as failed; the others go on.
    """
    try:
        import ray
    except ImportError as err:
        raise DevaError(
            f"running videos in parallel needs Ray: {install_hint('cluster')} (or use --workers 1)"
        ) from err
    started = not ray.is_initialized()
    if started:
        _start(ray, workers, address)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_track_in_worker)
        running = {task.remote(job, options): job for job in jobs}
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                job = running.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as err:
                    reason = f"Ray task failed: {type(err).__name__}: {str(err)[:300]}"
                    record = VideoRecord(
                        job.name, str(job.input), str(job.output), "failed", reason=reason
                    )
                on_done(record)
    finally:
        if started:
            ray.shutdown()


def _start(ray: object, workers: int, address: str | None) -> None:
    # No runtime_env: one would make Ray start fresh workers instead of its prestarted ones.
    settings = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is not None:
            ray.init(address=address, **settings)  # type: ignore[attr-defined]
        else:
            ray.init(num_cpus=workers, include_dashboard=False, **settings)  # type: ignore[attr-defined]
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise DevaError(f"cannot start {where}: {err}") from err


def _track_in_worker(job: VideoJob, options: TrackOptions) -> VideoRecord:
    """The Ray task: one thread for every library, then the in-process tracker."""
    os.environ.update(_SINGLE_THREAD)  # before torch / OpenCV start their thread pools
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    return track_video(job, options)
