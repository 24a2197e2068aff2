"""Resolve a local directory, the name of a model wavlm ships (wavlm.zoo) or a Hugging Face Hub repo id to a local
directory holding the requested files.

huggingface_hub is optional (`pip install wavlm[hub]`) and imported only when a Hub id is given.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

_TRUTHY = {"1", "true", "yes", "on"}

# The download options of transformers' from_pretrained that every loader here passes to `resolve_files`.
HUB_OPTIONS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "subfolder", "proxies")
# Flags transformers' loaders pass around that mean nothing here (remote code, telemetry, revision bookkeeping);
# `hub_options(kwargs, drop=IGNORED_FLAGS)` discards them where a loader accepts them.
IGNORED_FLAGS = ("trust_remote_code", "_from_auto", "_from_pipeline", "_commit_hash")


def hub_options(kwargs: dict, drop: tuple[str, ...] = ()) -> dict:
    """Remove the HUB_OPTIONS from `kwargs` (in place) and return them; the keywords in `drop` are removed too and
    forgotten. Every loader of this package reads its download options through here."""
    for key in drop:
        kwargs.pop(key, None)
    return {k: kwargs.pop(k) for k in HUB_OPTIONS if k in kwargs}


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
    force_download: bool = False,
    subfolder: str | None = None,
    proxies: dict | None = None,
) -> Path:
    """Return a local directory that holds those of `filenames` that exist in the source.

    A local directory is returned as is (its `subfolder`, if given). Otherwise `repo_id_or_path` is a Hub repo id
    and the files are fetched with `huggingface_hub.snapshot_download(allow_patterns=filenames)` (glob patterns
    allowed, looked up under `subfolder`), which fails fast without network, unlike `hf_hub_download`'s retries.
    Files the repo lacks are simply absent from the returned directory: callers check for what they need.
    `HF_HUB_OFFLINE=1` implies `local_files_only`. `proxies` is accepted for transformers' signature only when
    None: huggingface_hub >= 1.0 takes proxies from the HTTPS_PROXY environment variable.

    Raises:
        OSError: the path does not exist, huggingface_hub is missing, or the repo cannot be reached / is not
            in the local cache; the message names the repo id and suggests a local path or HF_HUB_OFFLINE.
    """
    if proxies:
        raise ValueError("proxies= is not supported: huggingface_hub reads the proxy from the HTTPS_PROXY / "
                         "HTTP_PROXY environment variables; set those instead")
    subfolder = _subfolder(subfolder)
    name = os.fspath(repo_id_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        if subfolder and not (path / subfolder).is_dir():
            raise OSError(f"{name} has no subfolder {subfolder!r}")
        return path / subfolder if subfolder else path
    if path.is_file():
        raise OSError(f"{name} is a file; pass the directory that holds {', '.join(filenames)}")
    if _looks_like_path(name) or not name:
        raise OSError(f"no such directory: {name!r}")
    from wavlm.zoo import notice, shipped_path

    shipped = shipped_path(name)
    if shipped is not None:  # a model wavlm ships (wavlm.zoo): no Hub, no network
        warnings.warn(notice(name), UserWarning, stacklevel=3)
        if subfolder and not (shipped / subfolder).is_dir():
            raise OSError(f"{name} has no subfolder {subfolder!r}")
        return shipped / subfolder if subfolder else shipped
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise OSError(f"{name!r} is not a local directory, and loading it from the Hugging Face Hub needs "
                      f"huggingface_hub: pip install wavlm[hub] (or pass a local directory)") from e
    local_files_only = local_files_only or hub_offline()
    try:
        patterns = [f"{subfolder}/{p}" if subfolder else p for p in filenames]
        directory = snapshot_download(repo_id=name, allow_patterns=patterns, revision=revision,
                                      cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
                                      token=token, local_files_only=local_files_only,
                                      force_download=bool(force_download) and not local_files_only)
    except Exception as e:  # huggingface_hub raises many types (HTTP, offline, auth); report them all alike
        where = "in the local Hugging Face cache" if local_files_only else "on the Hugging Face Hub"
        what = ", ".join(filenames) + (f" in subfolder {subfolder!r}" if subfolder else "")
        raise OSError(f"could not get {what} for {name!r} {where} ({type(e).__name__}: {e}). "
                      f"If the files are on disk, pass their local directory; if they were downloaded before, "
                      f"set HF_HUB_OFFLINE=1 to use the cache without network") from e
    return Path(directory) / subfolder if subfolder else Path(directory)


def _subfolder(subfolder: str | os.PathLike | None) -> str:
    """A relative folder inside a model directory or repo ("" for none); refuses paths that leave it."""
    if subfolder is None:
        return ""
    text = os.fspath(subfolder).replace("\\", "/").strip("/")
    if Path(os.fspath(subfolder)).is_absolute() or ".." in text.split("/"):
        raise ValueError(f"subfolder must be a folder inside the model directory or repo, got {subfolder!r}")
    return text
