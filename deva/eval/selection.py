"""Which sequences an evaluator scores: every ground-truth sequence must have results and every
results sequence must be in the ground truth, or the user asks for the subset explicitly; a mean
over fewer sequences than the benchmark has is never taken silently."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from deva.errors import DevaError


@dataclass(frozen=True)
class Selection:
    """The names to score, in ground-truth order, and the header line that says which they are."""

    names: tuple[str, ...]
    header: str


def select(
    expected: Sequence[str],
    present: Collection[str],
    *,
    results: str,
    source: str,
    subset: bool,
    known: Collection[str] | None = None,
    noun: str = "sequence",
    hint: str = "",
) -> Selection:
    """Match the results' names to the ground truth's.

    expected: the names to score, in order (an image-set list, or the whole ground truth).
    present: the names the results hold.
    known: every ground-truth name (default ``expected``); a results name outside it is
        misnamed, one inside it but not expected is simply not scored (another split's results).
    results / source: how messages name the results and the expected list.
    subset: score the expected names that have results instead of stopping on missing or
        misnamed ones; the header then lists what was left out.
    hint: appended to the message about missing results.
    """
    known_names = set(expected if known is None else known)
    unknown = sorted(n for n in present if n not in known_names)
    missing = [n for n in expected if n not in present]
    names = tuple(n for n in expected if n in present)
    if unknown and not subset:
        raise DevaError(
            f"{results}: {len(unknown)} results {noun}(s) not in the ground truth: "
            f"{listing(unknown)} (rename them, or pass --subset to score only the {noun}s "
            "that have results)"
        )
    if missing and not subset:
        raise DevaError(
            f"{results}: no results for {len(missing)} of the {len(expected)} {noun}s of "
            f"{source}: {listing(missing)} (pass --subset to score only those with results{hint})"
        )
    if not names:
        raise DevaError(f"{results}: no {noun} matches a ground-truth {noun} of {source}")
    plural = f"{noun}s" if len(expected) != 1 else noun
    if not missing and not unknown:
        return Selection(names, f"{plural.capitalize()}: all {len(expected)} of {source}.")
    header = f"{plural.capitalize()}: SUBSET, {len(names)} of the {len(expected)} of {source}"
    if missing:
        header += f"; not scored (no results): {listing(missing)}"
    if unknown:
        header += f"; ignored, not in the ground truth: {listing(unknown)}"
    return Selection(names, header + ".")


def listing(names: Sequence[str], limit: int = 10) -> str:
    """Names for a message, comma-separated, the first ``limit`` only."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"
