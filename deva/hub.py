"""Asking the Hugging Face hub for a model or a file: the local cache first, then one request,
so an unreachable hub is one error line at once.

Left alone, huggingface_hub retries an unreachable hub five times with back-off (about 25 s
before the first error) and, next to deva's log handler, prints each retry twice. Nothing here
is imported by ``import deva``; huggingface_hub is imported when used.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (the hub library reads it at import)."""
    values = (os.environ.get(name) for name in OFFLINE_VARIABLES)
    return any(v and v.strip().lower() in ("1", "true", "yes", "on") for v in values)


def quiet_duplicate_logs() -> None:
    """huggingface_hub logs through a handler of its own; keep its records from also reaching
    the root handler deva's command line sets up, which printed each warning twice."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        return
    hub_logging.disable_propagation()


def is_cached(repo_id: str, filename: str) -> bool:
    """Whether ``filename`` of the hub repo ``repo_id`` is in the local cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except ValueError:  # not a valid repo id: nothing of it can be cached
        return False


def unreachable(repo_id: str, filename: str) -> str | None:
    """Why the hub cannot be asked for ``repo_id``/``filename`` (a few words), or None if it
    answers. One request without retries; an HTTP error (not found, gated) is an answer: the
    real download reports it."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
    except ImportError:  # an old or stand-in huggingface_hub: let the download itself try
        return None
    quiet_duplicate_logs()
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename))
    except Exception as err:  # connection refused, DNS, timeout, proxy ... or an HTTP status
        if getattr(err, "response", None) is not None:
            return None
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"the Hugging Face hub cannot be reached ({reason})"
    return None


def fetch_file(repo_id: str, filename: str) -> Path:
    """The local path of ``filename`` from the hub repo ``repo_id``: from the cache if it is
    there (no network), else downloaded after one request showed the hub answers. Raises the
    hub library's error, or ConnectionError saying why the hub cannot be reached."""
    from huggingface_hub import hf_hub_download

    quiet_duplicate_logs()
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_files_only=True))
    except Exception:
        if offline():
            raise ConnectionError("HF_HUB_OFFLINE is set and it is not in the cache") from None
    problem = unreachable(repo_id, filename)
    if problem is not None:
        raise ConnectionError(f"not in the local cache, and {problem}")
    return Path(hf_hub_download(repo_id=repo_id, filename=filename))
