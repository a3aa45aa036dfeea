"""The synth stage (`pipelines/synth.py` = `histcode synth`) writes to synth.out_dir from params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_script_uses_params_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "synth": {
                    "out_dir": str(out),
                    "seed": 5,
                    "n_patients": 2,
                    "n_patients_external": 1,
                    "n_without_normal": 1,
                    "slide_width": 1024,
                    "slide_height": 1024,
                    "n_genes_background": 10,
                    "workers": 1,
                    "n_svs": 1,
                    "n_40x": 0,
                    "progress": False,
                }
            }
        )
    )
    from histcode.cli import run_stage

    assert (ROOT / "pipelines" / "synth.py").read_text().rstrip().endswith('run_stage("synth")')
    with pytest.raises(SystemExit) as done:
        run_stage("synth", ["--params", str(params)])
    assert done.value.code == 0
    manifest = json.loads((out / "ground_truth" / "manifest.json").read_text())
    assert manifest["n_slides"] == 6 and manifest["config"]["seed"] == 5
    assert len(list((out / "tcga_synth" / "slides").iterdir())) == 4
    assert not (out / ".synth_started").exists()


def test_cli_registers_synth_command() -> None:
    import typer

    from histcode import cli
    from histcode.synth import commands

    assert cli.COMMANDS["synth"] == "histcode.synth.commands" and cli.STAGES["synth"] == ("synth",)
    app = typer.Typer()
    commands.register(app)
    app.command("noop")(lambda: None)  # a second command keeps typer in multi-command mode
    result = CliRunner().invoke(app, ["synth", "--help"])
    assert result.exit_code == 0 and "--tiny" in result.output
