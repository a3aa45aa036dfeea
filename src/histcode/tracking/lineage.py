"""What a run saw: the git commit and the DVC content hash of its inputs, as run tags (DESIGN §5)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from histcode import __version__

EXP_NAME_TAG = "dvc.exp_name"


def git_commit() -> str:
    """Current git commit (suffixed ``-dirty`` when the tree has changes), or ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
        return sha.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_hash(paths: list[str | Path]) -> str:
    """A content hash of the given inputs, as DVC records it in ``dvc.lock``/``.dvc`` files when present.

    Falls back to hashing file sizes+mtimes+names for paths DVC does not track (fast, stable per content
    snapshot). Used to tie runs and registered models to the exact data they saw.
    """
    h = hashlib.md5()
    lock = _dvc_lock_hashes()
    for p in sorted(str(x) for x in paths):
        key = p.rstrip("/")
        if key in lock:
            h.update(f"{key}:{lock[key]}".encode())
            continue
        inside = _inside_tracked_dir(key, lock)
        if inside is not None:  # e.g. data/features/<cohort>/<encoder> of the tracked data/features/<cohort>
            h.update(f"{key}:{inside}".encode())
            continue
        path = Path(p)
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for f in files:
            if f.is_file():
                st = f.stat()
                h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def _inside_tracked_dir(key: str, lock: Mapping[str, str]) -> str | None:
    """Content hash of ``key``, a path inside a DVC-tracked directory, from that directory's manifest in the DVC
    cache (relative path → md5 of each file); None when no tracked directory holds it or its manifest is not
    cached. Before, such paths fell back to file mtimes, so the same data hashed differently in every clone."""
    for top, md5 in lock.items():
        if not (md5.endswith(".dir") and key.startswith(top + "/")):
            continue
        manifest = _dvc_cache_dir() / "files" / "md5" / md5[:2] / md5[2:]
        try:
            entries = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None
        rel = key[len(top) + 1:]
        picked = sorted(f"{e['relpath']}:{e['md5']}" for e in entries
                        if str(e.get("relpath", "")) == rel or str(e.get("relpath", "")).startswith(rel + "/"))
        return hashlib.md5("\n".join(picked).encode()).hexdigest() if picked else None
    return None


def _dvc_cache_dir() -> Path:
    """The DVC cache: ``cache.dir`` of ``.dvc/config.local`` or ``.dvc/config`` (a team's shared cache, set by
    ``dvc cache dir``; relative to ``.dvc/``), else ``.dvc/cache``."""
    import configparser

    for name in ("config.local", "config"):
        parser = configparser.ConfigParser()
        try:
            parser.read(Path(".dvc") / name)
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            return Path(".dvc") / os.path.expanduser(parser.get("cache", "dir").strip().strip("'\""))
    return Path(".dvc/cache")


def _dvc_lock_hashes() -> dict[str, str]:
    out: dict[str, str] = {}
    lock = Path("dvc.lock")
    if lock.exists():
        from histcode.config import yaml_load

        data = yaml_load(lock.read_text()) or {}
        stages = list((data.get("stages") or {}).values())
        # a path's producing stage (its outs) wins over the stages that read it (their deps): during `dvc repro`
        # DVC rewrites a stage's entry when it finishes, so a consumer still running holds the previous hash
        for kind in ("deps", "outs"):
            for stage in stages:
                for entry in stage.get(kind) or []:
                    if "md5" in entry:
                        out[str(entry["path"]).rstrip("/")] = entry["md5"]
    for dvcfile in [*Path(".").glob("*.dvc"), *Path("data").glob("*.dvc")]:  # e.g. data/raw.dvc (real cohorts)
        if not dvcfile.is_file():  # the .dvc/ config directory also matches the pattern
            continue
        from histcode.config import yaml_load

        data = yaml_load(dvcfile.read_text()) or {}
        for entry in data.get("outs") or []:
            if "md5" in entry:  # paths in a .dvc file are relative to its folder
                out[str(dvcfile.parent / str(entry["path"])).rstrip("/")] = entry["md5"]
    return out


def run_tags(*, stage: str, cohort: str | None = None, inputs: list[str | Path] | None = None) -> dict[str, str]:
    """Tags every run carries: stage, git commit, DVC data hash of its inputs, cohort, package version and, in
    a ``dvc exp run``, the experiment's name and baseline commit."""
    tags = {
        "histcode.stage": stage,
        "git_commit": git_commit(),
        "histcode.version": __version__,
    }
    if cohort:
        tags["cohort"] = cohort
    if os.environ.get("DVC_EXP_NAME"):  # set by `dvc exp run` (also --temp/--queue): find an experiment's runs
        tags[EXP_NAME_TAG] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc.exp_baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    if inputs:
        tags["dvc_data_hash"] = dvc_hash(inputs)
    return tags
