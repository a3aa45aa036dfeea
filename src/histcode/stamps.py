"""Stage stamps: a DVC stage command that already completed with the same params, the same dependencies and
outputs untouched since has nothing to do, and says so in milliseconds, before it imports anything heavy.

DVC skips an unchanged stage by itself; a stage command run by hand (``histcode train-mil``, ``python
pipelines/train_mil.py``) cannot ask DVC without paying for it. So when a command is exactly a ``dvc.yaml``
stage's ``cmd`` (``foreach`` expanded; ``--progress``/``--no-progress`` and the default ``--params params.yaml``
aside, they change no output), a successful run records a stamp in ``.histcode/stamps/<stage>.json``: the values
of the stage's declared params and the (size, mtime) of every file of its declared deps and outs, the same
evidence ``make`` trusts. The next run of the command compares and returns at once when nothing differs. Any
difference (a param, a code file under the declared deps, an input, an output removed or rewritten, e.g. by
``dvc repro --force``) runs the stage, which then decides per item (tile and extract resume finished slides).
The stamp is removed when a run starts, so an interrupted run never leaves one behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAMP_DIR = Path(".histcode") / "stamps"
NEUTRAL_FLAGS = frozenset({"--progress", "--no-progress"})  # display only
DEFAULT_PARAMS = "params.yaml"


def _normalise(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        if args[i] in NEUTRAL_FLAGS:
            i += 1
        elif args[i] == "--params" and i + 1 < len(args) and args[i + 1] == DEFAULT_PARAMS:
            i += 2
        elif args[i] == f"--params={DEFAULT_PARAMS}":
            i += 1
        else:
            out.append(args[i])
            i += 1
    return out


def interpolate(value: str, params: dict[str, Any], key: str | None = None, item: Any = None) -> str:
    """DVC's ``${...}`` templating as ``dvc.yaml`` uses it: ``${key}``, ``${item.x}`` and dotted params keys."""
    out, start = "", 0
    while (i := value.find("${", start)) >= 0:
        j = value.index("}", i)
        parts = value[i + 2:j].strip().split(".")
        if parts == ["key"]:
            val: Any = key
        else:
            val = item if parts[0] == "item" else params[parts[0]]
            for part in parts[1:]:
                val = val[part]
        out += value[start:i] + str(val)
        start = j + 1
    return out + value[start:]


def _paths(entries: list[Any], params: dict[str, Any], key: str | None, item: Any) -> list[str]:
    return [interpolate(next(iter(e)) if isinstance(e, dict) else e, params, key, item) for e in entries]


@dataclass(frozen=True)
class StageSpec:
    """One (expanded) stage of ``dvc.yaml``: its name, command and what it declares."""

    name: str
    cmd: str
    deps: list[str]
    params: list[str]
    outs: list[str]  # outs, metrics and plots


def stage_specs(root: Path) -> dict[str, StageSpec]:
    """Every stage of ``root/dvc.yaml`` with ``foreach`` expanded over ``params.yaml`` (``name@key``)."""
    from histcode.config import yaml_load

    dvc = yaml_load((root / "dvc.yaml").read_text())
    params = yaml_load((root / DEFAULT_PARAMS).read_text()) or {}
    specs: dict[str, StageSpec] = {}
    for name, spec in (dvc.get("stages") or {}).items():
        if "foreach" in spec:
            items: Any = params
            for part in str(spec["foreach"]).strip("${} ").split("."):
                items = items[part]
            pairs = list(items.items()) if isinstance(items, dict) else [(str(k), k) for k in items]
            body = spec["do"]
        else:
            pairs, body = [(None, None)], spec
        for key, item in pairs:
            outs = [e for k in ("outs", "metrics", "plots") for e in body.get(k, [])]
            full = f"{name}@{key}" if key is not None else name
            specs[full] = StageSpec(full, interpolate(body["cmd"], params, key, item),
                                    _paths(body.get("deps", []), params, key, item),
                                    [interpolate(p, params, key, item) for p in body.get("params", [])
                                     if isinstance(p, str)],
                                    _paths(outs, params, key, item))
    return specs


def find_stage(stage: str, args: list[str], root: Path) -> StageSpec | None:
    """The ``dvc.yaml`` stage whose command is ``python pipelines/<stage>.py <args>``, else None."""
    wanted = _normalise(list(args))
    for name, spec in stage_specs(root).items():
        if name.split("@")[0] != stage:
            continue
        cmd = shlex.split(spec.cmd)
        if cmd[:2] == ["python", f"pipelines/{stage}.py"] and _normalise(cmd[2:]) == wanted:
            return spec
    return None


def _files(root: Path, rel: str) -> Iterator[tuple[str, int, int]]:
    p = root / rel
    if p.is_file():
        st = p.stat()
        yield rel, st.st_size, st.st_mtime_ns
    elif p.is_dir():
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                yield os.path.relpath(os.path.join(dirpath, f), root), st.st_size, st.st_mtime_ns
    else:
        yield rel, -1, -1  # missing


def _digest(root: Path, rels: list[str]) -> str:
    h = hashlib.sha256()
    for rel in rels:
        for entry in _files(root, rel):
            h.update(repr(entry).encode())
    return h.hexdigest()


def _param(params: dict[str, Any], dotted: str) -> Any:
    val: Any = params
    for part in dotted.split("."):
        if not isinstance(val, dict) or part not in val:
            return "<missing>"
        val = val[part]
    return val


def evidence(spec: StageSpec, root: Path) -> dict[str, Any]:
    """What a stamp compares: declared params' values, deps' and outs' (size, mtime) digests."""
    from histcode.config import yaml_load

    params = yaml_load((root / DEFAULT_PARAMS).read_text()) or {}
    return {"stage": spec.name, "cmd": spec.cmd, "params": {k: _param(params, k) for k in spec.params},
            "deps": _digest(root, spec.deps), "outs": _digest(root, spec.outs)}


@dataclass(frozen=True)
class Stamp:
    spec: StageSpec
    root: Path

    @property
    def path(self) -> Path:
        return self.root / STAMP_DIR / f"{self.spec.name}.json"

    def current(self) -> bool:
        """The stage completed with these params and deps, and its outputs are as it left them."""
        try:
            recorded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False
        return bool(recorded == json.loads(json.dumps(evidence(self.spec, self.root), default=str)))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def record(self) -> None:
        from histcode.atomic import write_json

        write_json(self.path, json.loads(json.dumps(evidence(self.spec, self.root), default=str)))


def for_command(stage: str, args: list[str], root: Path | None = None) -> Stamp | None:
    """The stamp of this stage command when it is a ``dvc.yaml`` stage's command in ``root`` (default: the
    working directory), else None (another command line, no project files, a multi-process run)."""
    root = Path.cwd() if root is None else root
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or not (root / "dvc.yaml").is_file():
        return None
    with contextlib.suppress(Exception):  # an unreadable dvc.yaml/params.yaml: the stage itself reports it
        spec = find_stage(stage, args, root)
        return Stamp(spec, root) if spec is not None else None
    return None
