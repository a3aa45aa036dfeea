"""Files with the same bytes under two manifest rows: one image (or one count file) must not count twice.

A slide downloaded twice, or one file listed under two patients, puts the same tissue in two places: twice in one
patient's bag, or on both sides of a patient-level CV split at once (a leak that inflates every held-out number).
The cheap content fingerprint (size + first and last MiB, ``histcode.cohort.fingerprint``) finds the candidates; a
full hash confirms them, so two slides that differ only inside (one re-encoded tile) are never taken for copies.
Links to one file are copies too (their real path is the same, so it is hashed once).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from histcode.cohort.fingerprint import fingerprint

log = logging.getLogger(__name__)

READ = 8 << 20


def full_digest(path: Path) -> str:
    """Hex BLAKE2b-128 of every byte of ``path`` (only for files whose fingerprints already agree)."""
    h = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as fh:
        while block := fh.read(READ):
            h.update(block)
    return h.hexdigest()


def identical_groups(paths: Sequence[Path], known: dict[str, tuple[int, str]] | None = None) -> list[list[int]]:
    """Groups of indices into ``paths`` (two or more each, in input order) whose files hold the same bytes.
    Paths that are not files are left out. ``known`` maps a path to its fingerprint and is filled in, so the
    caller can reuse them for ``fingerprints.csv``."""
    known = {} if known is None else known
    by_print: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        if Path(p).is_file():
            key = str(p)
            if key not in known:
                known[key] = fingerprint(Path(p))
            by_print[known[key]].append(i)
    digests: dict[str, str] = {}  # real path → full digest: links to one file are hashed once
    groups = []
    for idx in by_print.values():
        if len(idx) < 2:
            continue
        reals = [os.path.realpath(paths[i]) for i in idx]
        one_file = len(set(reals)) == 1  # links to one file: the same bytes without reading them
        by_bytes: dict[str, list[int]] = defaultdict(list)
        for i, real in zip(idx, reals, strict=True):
            if not one_file and real not in digests:
                log.info("hashing %s whole: its fingerprint matches another file's", paths[i])
                digests[real] = full_digest(Path(real))
            by_bytes[real if one_file else digests[real]].append(i)
        groups += [g for g in by_bytes.values() if len(g) > 1]
    return sorted(groups)


def exclude_copies(df: pd.DataFrame, table: str, owner: Sequence[str], failures: list[dict[str, Any]],
                   known: dict[str, tuple[int, str]] | None = None) -> pd.DataFrame:
    """``df`` with every file's copies left out, each recorded in ``failures`` with its reason.

    Copies that agree on ``owner`` (patient and label or sample type) are one file downloaded twice: the first
    row is kept. Copies under two owners leave all of them out, since the sheet cannot say whose tissue it is."""
    if df.empty:
        return df
    paths = [Path(p) for p in df["path"].astype(str)]
    drop: dict[int, tuple[str, str]] = {}
    for group in identical_groups(paths, known):
        rows = df.iloc[group]
        owners = rows[list(owner)].astype(str).agg(" / ".join, axis=1)
        first = rows.iloc[0]
        if owners.nunique() == 1:
            for pos, (_, r) in zip(group[1:], rows.iloc[1:].iterrows(), strict=True):
                drop[pos] = ("duplicate_file",
                             f"{r['file']}: the same bytes as {first['file']} (row {first['row']}), kept for "
                             f"{owners.iloc[0]}: a second copy would count its tissue twice; remove the duplicate "
                             "row or file")
            continue
        for pos in group:
            others = "; ".join(f"{r['file']} (row {r['row']}, {o})" for (_, r), o, p in
                               zip(rows.iterrows(), owners, group, strict=True) if p != pos)
            drop[pos] = ("duplicate_conflict",
                         f"{df.iloc[pos]['file']} ({owners.iloc[group.index(pos)]}): the same bytes as {others}. One "
                         "image cannot be two samples' tissue, and kept it would sit on both sides of a "
                         f"patient-level split: all {len(group)} copies left out; correct the sheet rows or "
                         "re-download the files")
    for pos, (kind, reason) in sorted(drop.items()):
        r = df.iloc[pos]
        failures.append({"table": table, "row": r["row"], "file": r["file"], "kind": kind, "reason": reason})
    keep = [pos not in drop for pos in range(len(df))]
    return df[keep]


def one_file_per_name(listing: pd.DataFrame, failures: list[dict[str, Any]]) -> pd.DataFrame:
    """A slide-folder listing (``file, slide_id, path, row``) with one file per slide id, each file left out recorded.

    gdc-client puts every download in a folder of its own (``<File ID>/<File Name>``), so one slide downloaded twice
    is two files of one name. Copies of the same bytes keep the first (sorted path); files of one name with other
    bytes are all left out, since which of them is the slide cannot be told."""
    twice = listing["slide_id"].duplicated(keep=False)
    if not twice.any():
        return listing
    drop = set()
    for sid, group in listing[twice].groupby("slide_id", sort=False):
        first = group.iloc[0]
        one_file = identical_groups([Path(p) for p in group["path"]]) == [list(range(len(group)))]
        for pos, (_, r) in enumerate(group.iterrows()):
            if one_file and pos == 0:
                continue
            if one_file:
                kind, reason = "duplicate_file", (f"{r['file']}: the same bytes as {first['file']} (row "
                                                  f"{first['row']}): one slide downloaded twice; remove the copy")
            else:
                kind, reason = "duplicate_slide_id", (
                    f"{r['file']}: {len(group)} files named {sid} with other bytes ({', '.join(group['file'])}); "
                    "which of them is the slide cannot be told, so none is used: keep the right one")
            failures.append({"table": "slides", "row": r["row"], "file": r["file"], "kind": kind, "reason": reason})
            drop.add(r["row"])
    return listing[~listing["row"].isin(drop)]
