"""Issue 11 item 3: one face per stage. Every DVC stage is one entry of the CLI's stage table, its script only
calls it, its command is registered by the module the table names, and every user error shares one root."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from histcode import cli
from histcode.errors import HistcodeError

ROOT = Path(__file__).resolve().parents[1]


def test_every_dvc_stage_is_one_table_entry_and_its_script_only_calls_it() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(cli.STAGES)
    for name, stage in stages.items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith(f"python pipelines/{name}.py"), cmd
        tree = ast.parse((ROOT / "pipelines" / f"{name}.py").read_text())
        guard = {id(n) for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) for n in ast.walk(h)}
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and id(n) not in guard]
        assert [ast.unparse(c) for c in calls] == [f"run_stage('{name}')"], name
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)], name


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "pipelines").glob("*.py")))
def test_a_stage_script_under_a_python_without_the_project_says_so_in_one_line(script: str) -> None:
    """`dvc repro` runs `python pipelines/<stage>.py` with whatever `python` is first on PATH; outside the venv that
    was a ModuleNotFoundError traceback (found on a fresh clone, round 34). ``-I -S``: no site-packages, no
    PYTHONPATH, so histcode is not importable, as under a system Python."""
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "pipelines" / script)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {ROOT / 'pipelines' / script}: histcode is not installed for ")
    assert "`. .venv/bin/activate`" in lines[0] and "`make repro`" in lines[0]


def test_each_command_is_defined_by_the_module_the_table_names() -> None:
    for word, module in cli.COMMANDS.items():
        app = typer.Typer()
        app.callback()(lambda: None)
        importlib.import_module(module).register(app)
        assert word in typer.main.get_command(app).commands, (word, module)  # type: ignore[attr-defined]
    for words in cli.STAGES.values():
        assert words[0] in cli.COMMANDS


def _error_classes() -> list[type]:
    found = []
    for path in sorted((ROOT / "src" / "histcode").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(b).endswith(("Error", "Exception", "Unavailable", "Exists", "Missing"))
                    for b in node.bases):
                found.append(getattr(importlib.import_module(module), node.name))
    return found


def test_every_user_error_has_the_one_root() -> None:
    errors = [c for c in _error_classes() if c is not HistcodeError]
    assert len(errors) >= 18  # ConfigError, RegistryError, SlideError, ... (a new one must join the root too)
    assert [c.__qualname__ for c in errors if not issubclass(c, HistcodeError)] == []
    from histcode.config import ConfigError

    assert issubclass(ConfigError, ValueError)  # the builtin base stays: existing `except ValueError` still work
