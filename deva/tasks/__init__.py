"""The paper's benchmark protocols as dataset-level runners (spec §4): each reads a dataset in
its official layout, runs the tracker or the associated consensus, and writes the layout the
benchmark's evaluator reads. ``deva run-task TASK`` is the command line for them."""

TASKS: tuple[str, ...] = (
    "vipseg",
    "burst",
    "davis17-unsup",
    "davis16-saliency",
    "ref-davis",
    "ref-youtube",
)
