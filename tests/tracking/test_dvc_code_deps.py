"""Every dvc.yaml stage's code ``deps`` cover the modules it imports, so a change there reruns the stage.

A stage's entry is read from its ``cmd``: ``python pipelines/<x>.py`` is that script (and, when the script
hands over to the CLI with ``run_stage("<stage>")``, the command ``histcode.cli.STAGES`` names for it);
``histcode <command>`` / ``python -m histcode.cli <command>`` is the function of ``histcode.cli.COMMANDS``'
module that defines the command. From there every ``histcode.*`` import is followed, lazy ones inside
functions included. The base layers (``histcode.prologue``, the stage prologue every stage runs, and below in
the import-linter layers of pyproject.toml, with the modules of a base package such as ``histcode.tracking``), the
dispatcher ``histcode.cli`` and the ``histcode`` package itself are used by every stage and, by the convention of
dvc.yaml, not listed; nor is a package ``__init__`` that holds only its docstring.
"""

from __future__ import annotations

import ast
import importlib
import shlex
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _base_modules() -> set[str]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    names = [[m.strip() for m in layer.split(":")] for layer in layers]
    first = next(i for i, layer in enumerate(names) if "histcode.prologue" in layer)
    return {"histcode", "histcode.cli", *(m for layer in names[first:] for m in layer)}


BASE = _base_modules()


def in_base(name: str) -> bool:
    """A base-layer module or a module of a base-layer package (``histcode.tracking.runs``)."""
    return any(name == b or (b != "histcode" and name.startswith(b + ".")) for b in BASE)


def module_file(name: str) -> Path | None:
    """The source file of ``histcode.<...>`` (a package's ``__init__.py``); None when no such module."""
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _package(name: str) -> str:
    return name if module_file(name) and module_file(name).name == "__init__.py" else name.rpartition(".")[0]


def _walk(node: ast.AST, skip: tuple[ast.AST, ...] = ()):
    """``ast.walk`` that leaves out ``if TYPE_CHECKING:`` blocks (annotations only) and the ``skip`` nodes."""
    if node in skip:
        return
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for c in child.orelse for n in _walk(c, skip))
            continue
        yield from _walk(child, skip)


def imported(nodes: list[ast.AST], where: str, skip: tuple[ast.AST, ...] = ()) -> set[str]:
    """``histcode.*`` modules imported anywhere in ``nodes`` (``where``: the importing module, for relative
    imports; ``skip``: subtrees left out); ``from pkg import name`` counts ``pkg.name`` when that is a module,
    else ``pkg``."""
    out: set[str] = set()
    for node in (n for top in nodes for n in _walk(top, skip)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "histcode"}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = _package(where).split(".")
                mod = ".".join(parts[: len(parts) - node.level + 1] + ([mod] if mod else []))
            if mod.split(".")[0] != "histcode":
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}")}
    parents = {".".join(m.split(".")[:i]) for m in out for i in range(1, m.count(".") + 1)}
    return {m for m in out | parents if module_file(m)}  # importing a.b.c runs a/__init__ and a/b/__init__


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text())


def closure(roots: set[str]) -> set[str]:
    """``roots`` and every module they import, transitively (whole modules: top-level and lazy imports); a
    command module (``module:command``) counts only that command's part of it (``command_imports``)."""
    seen = {r.partition(":")[0] for r in roots if ":" in r}
    todo = [m for r in roots for m in ([r] if ":" not in r else command_imports(*r.split(":")))]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += imported([_tree(name)], name) - seen
    return seen


def command_roots(words: list[str]) -> set[str]:
    """``{"<module>:<command>"}``: the ``COMMANDS`` module of ``histcode <words>`` and its (sub-)command."""
    cli = importlib.import_module("histcode.cli")
    module = cli.COMMANDS[words[0]]  # a command the CLI does not define fails here, naming it
    word = next((w for w in reversed(words) if w in _commands(module)), None)  # ``tune mil``: sub-command ``mil``
    assert word is not None, f"{module}: no function defines the command {' '.join(words)!r}"
    return {f"{module}:{word}"}


def _commands(module: str) -> dict[str, list[ast.AST]]:
    """Command name → the functions a ``@<app>.command(...)`` decorator registers under it in ``module``."""
    commands: dict[str, list[ast.AST]] = {}
    for fn in (n for n in ast.walk(_tree(module)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for dec in fn.decorator_list:
            if isinstance(dec, ast.Call) and getattr(dec.func, "attr", None) == "command":
                named = dec.args[0].value if dec.args and isinstance(dec.args[0], ast.Constant) else None
                commands.setdefault(named or fn.name.removesuffix("_cmd").replace("_", "-"), []).append(fn)
    return commands


def command_imports(module: str, word: str) -> set[str]:
    """What command ``word`` of ``module`` imports: the module less the functions of its other commands."""
    others = tuple(fn for name, fns in _commands(module).items() if name != word for fn in fns)
    return imported([_tree(module)], module, skip=others)


def entry_roots(cmd: str) -> set[str]:
    """The modules a stage's ``cmd`` starts from."""
    argv = shlex.split(cmd)
    if argv[0] == "histcode":
        return command_roots(argv[1:])
    if argv[:3] == ["python", "-m", "histcode.cli"]:
        return command_roots(argv[3:])
    assert argv[0] == "python" and argv[1].endswith(".py"), f"unrecognised stage cmd: {cmd}"
    tree = ast.parse((ROOT / argv[1]).read_text())
    roots = imported([tree], "pipelines")
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if getattr(call.func, "id", getattr(call.func, "attr", None)) == "run_stage" and call.args:
            stage = call.args[0].value
            roots |= command_roots(list(importlib.import_module("histcode.cli").STAGES[stage]))
    return roots


def inert(name: str) -> bool:
    """A package ``__init__`` that only documents its package runs nothing a stage could depend on."""
    body = _tree(name).body if module_file(name).name == "__init__.py" else [None]
    return all((isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str))
               or (isinstance(n, ast.ImportFrom) and n.module == "__future__") for n in body)


def _stages() -> dict[str, dict]:
    return {name: st.get("do", st) for name, st in DVC["stages"].items()}


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_code_deps_cover_its_imports(stage: str) -> None:
    spec = _stages()[stage]
    deps = [d for d in spec["deps"] if "${" not in d]
    script = shlex.split(spec["cmd"])[1]
    if script.endswith(".py"):
        assert script in deps, f"dvc.yaml {stage}: deps lack its own script {script}"
    missing = {}
    for name in sorted(n for n in closure(entry_roots(spec["cmd"])) if not in_base(n) and not inert(n)):
        rel = module_file(name).relative_to(ROOT).as_posix()
        if not any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps):
            missing[name] = rel
    assert not missing, (f"dvc.yaml {stage}: code deps miss imported modules (add the file or its package "
                         f"folder): {sorted(missing.values())}")


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_code_deps_exist_and_are_imported(stage: str) -> None:
    """A code dep that moved away breaks ``dvc repro``; one the stage no longer imports reruns it for nothing."""
    spec = _stages()[stage]
    used = {module_file(n).relative_to(ROOT).as_posix() for n in closure(entry_roots(spec["cmd"]))}
    used.add(shlex.split(spec["cmd"])[1])
    for dep in (d for d in spec["deps"] if d.startswith(("src/histcode/", "pipelines/"))):
        assert (ROOT / dep).exists(), f"dvc.yaml {stage}: code dep {dep} does not exist (moved?)"
        if dep.endswith((".py", "/")) or (ROOT / dep).is_dir():
            assert any(u == dep or u.startswith(dep.rstrip("/") + "/") for u in used), (
                f"dvc.yaml {stage}: code dep {dep} holds no module the stage imports")


def test_the_walk_sees_lazy_imports_and_packages() -> None:
    """The import walk itself: a function-level import counts, and so does the package it lives in."""
    tree = ast.parse("def f():\n    from histcode.mil import report\n")
    assert imported([tree], "x") == {"histcode", "histcode.mil", "histcode.mil.report"}
    assert "histcode.registry.names" in closure({"histcode.mil.final"})
    assert {"histcode.mil.stage", "histcode.mil"} <= closure(entry_roots("python pipelines/train_mil.py"))
