"""Resolve a local directory or a Hugging Face Hub repo id to a local directory holding the requested files.

huggingface_hub is optional (`pip install wavlm[hub]`) and imported only when a Hub id is given.
"""
from __future__ import annotations

import os
from pathlib import Path

_TRUTHY = {"1", "true", "yes", "on"}


def _looks_like_path(name: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything else (absolute, ./, ~, several slashes) is meant as a path.
    return (name.startswith((".", "/", "~")) or os.sep in name.replace("/", "", 1)
            or name.count("/") > 1 or (os.altsep is not None and os.altsep in name))


def hub_offline() -> bool:
    """True when `HF_HUB_OFFLINE` is set to a true value: only the local cache may be used."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def resolve_files(
    repo_id_or_path: str | os.PathLike,
    filenames: list[str],
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """Return a local directory that holds those of `filenames` that exist in the source.

    A local directory is returned as is. Otherwise `repo_id_or_path` is a Hub repo id and the files are
    fetched with `huggingface_hub.snapshot_download(allow_patterns=filenames)` (glob patterns allowed), which
    fails fast without network, unlike `hf_hub_download`'s retries. Files the repo lacks are simply absent from
    the returned directory: callers check for what they need. `HF_HUB_OFFLINE=1` implies `local_files_only`.

    Raises:
        OSError: the path does not exist, huggingface_hub is missing, or the repo cannot be reached / is not
            in the local cache; the message names the repo id and suggests a local path or HF_HUB_OFFLINE.
    """
    name = os.fspath(repo_id_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise OSError(f"{name} is a file; pass the directory that holds {', '.join(filenames)}")
    if _looks_like_path(name) or not name:
        raise OSError(f"no such directory: {name!r}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise OSError(f"{name!r} is not a local directory, and loading it from the Hugging Face Hub needs "
                      f"huggingface_hub: pip install wavlm[hub] (or pass a local directory)") from e
    local_files_only = local_files_only or hub_offline()
    try:
        directory = snapshot_download(repo_id=name, allow_patterns=list(filenames), revision=revision,
                                      cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
                                      token=token, local_files_only=local_files_only)
    except Exception as e:  # huggingface_hub raises many types (HTTP, offline, auth); report them all alike
        where = "in the local Hugging Face cache" if local_files_only else "on the Hugging Face Hub"
        raise OSError(f"could not get {', '.join(filenames)} for {name!r} {where} ({type(e).__name__}: {e}). "
                      f"If the files are on disk, pass their local directory; if they were downloaded before, "
                      f"set HF_HUB_OFFLINE=1 to use the cache without network") from e
    return Path(directory)
