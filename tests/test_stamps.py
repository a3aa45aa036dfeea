"""Stage stamps (``histcode.stamps``): a DVC stage command with nothing to do returns before importing its
module; any change of params, deps or outs, or another command line, runs it."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from histcode import cli, stamps

DVC = {"stages": {"fake": {"foreach": "${base.cohorts}", "do": {
    "cmd": "python pipelines/fake.py --cohort ${key} --no-progress",
    "deps": ["pipelines/fake.py", "src/fake", "data/in/${key}"],
    "params": ["base.cohorts.${key}", "fake.n"],
    "outs": ["data/out/${key}", {"reports/metrics/fake/${key}.json": {"cache": False}}]}}}}
PARAMS = {"base": {"cohorts": {"a": {"x": 1}, "b": {"x": 2}}}, "fake": {"n": 3, "other": 0}}
# the command: counts its runs in runs.txt and writes its outputs
MODULE = textwrap.dedent('''
    from pathlib import Path
    import typer

    def register(app):
        @app.command("fake")
        def fake(cohort: str = typer.Option(...), progress: bool = typer.Option(True)):
            runs = Path("runs.txt")
            runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
            out = Path("data/out") / cohort
            out.mkdir(parents=True, exist_ok=True)
            (out / "x.txt").write_text("done")
            Path("reports/metrics/fake").mkdir(parents=True, exist_ok=True)
            Path(f"reports/metrics/fake/{cohort}.json").write_text("{}")
''')


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for rel, text in {"dvc.yaml": yaml.safe_dump(DVC), "params.yaml": yaml.safe_dump(PARAMS),
                      "pipelines/fake.py": "", "src/fake/code.py": "A = 1\n", "data/in/a/slide.txt": "a",
                      "data/in/b/slide.txt": "b", "fake_commands.py": MODULE}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "fake", "fake_commands")
    monkeypatch.setitem(cli.STAGES, "fake", ("fake",))
    monkeypatch.delitem(sys.modules, "fake_commands", raising=False)
    return tmp_path


def _run(*args: str) -> int:
    """Run ``histcode fake ...``; return how often the command body has run so far."""
    cli._registered.discard("fake_commands")
    try:
        cli.main(["fake", *args], prog="fake")
    except SystemExit as exc:
        assert not exc.code
    runs = Path("runs.txt")
    return int(runs.read_text()) if runs.exists() else 0


def _later(path: Path, text: str) -> None:
    time.sleep(0.01)
    path.write_text(text)


def test_a_completed_stage_command_returns_without_loading_its_module(project: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--cohort", "a") == 1
    assert (project / ".histcode/stamps/fake@a.json").is_file()
    sys.modules.pop("fake_commands")
    assert _run("--cohort", "a", "--no-progress") == 1  # --progress/--no-progress change no output
    assert "fake_commands" not in sys.modules
    assert "fake@a: up to date" in capsys.readouterr().out
    assert _run("--cohort", "b") == 2  # the other foreach item has no stamp yet


@pytest.mark.parametrize("change", ["param", "unrelated_param", "code", "input", "output_removed",
                                    "output_rewritten", "other_cohort_input"])
def test_any_change_runs_the_stage_again(project: Path, change: str) -> None:
    assert _run("--cohort", "a") == 1
    if change in ("param", "unrelated_param"):
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["fake"]["n" if change == "param" else "other"] = 4
        (project / "params.yaml").write_text(yaml.safe_dump(params))
    elif change == "code":
        _later(project / "src/fake/code.py", "A = 2\n")
    elif change == "input":
        _later(project / "data/in/a/slide.txt", "a2")
    elif change == "output_removed":  # what `dvc repro --force` does to a non-persistent output
        (project / "reports/metrics/fake/a.json").unlink()
    elif change == "output_rewritten":
        _later(project / "data/out/a/x.txt", "edited")
    else:
        _later(project / "data/in/b/slide.txt", "b2")
    expected = 1 if change in ("unrelated_param", "other_cohort_input") else 2
    assert _run("--cohort", "a") == expected


def test_other_command_lines_and_failed_runs_leave_no_stamp(project: Path) -> None:
    assert stamps.for_command("fake", ["--cohort", "a", "--extra"], project) is None  # not the DVC command
    assert stamps.for_command("fake", ["--cohort", "c"], project) is None  # no such foreach item
    assert stamps.for_command("fake", ["--cohort", "a", "--progress"], project) is not None
    os.environ["WORLD_SIZE"] = "2"
    try:
        assert stamps.for_command("fake", ["--cohort", "a"], project) is None  # torchrun: ranks decide together
    finally:
        del os.environ["WORLD_SIZE"]
    (project / "data/out").mkdir()
    (project / "data/out/a").write_text("a file where the command wants a folder")  # the command fails
    with pytest.raises(FileExistsError):
        cli.main(["fake", "--cohort", "a"], prog="fake")
    assert not (project / ".histcode/stamps/fake@a.json").exists()
