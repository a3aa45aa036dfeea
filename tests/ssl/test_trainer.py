"""Training loop: bit-for-bit resume from a checkpoint, config guard, and a 2-rank gloo DDP run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from histcode.ssl.config import PretrainConfig
from histcode.ssl.data import TensorTiles
from histcode.ssl.trainer import fit

SMALL = dict(backbone="resnet18_trunc", input_px=32, read_px=40, epochs=2, batch_size=8, tiles_per_slide=0.5,
             bank_size=16, proj_hidden=32, proj_dim=8, workers=0, threads=1, progress=False, log_every=1)


def _tiles() -> TensorTiles:
    g = torch.Generator().manual_seed(0)
    return TensorTiles((torch.rand(48, 3, 40, 40, generator=g) * 255).to(torch.uint8), [16, 16, 16])


@pytest.mark.parametrize("method", ["adco", "simclr"])
def test_resume_continues_bit_for_bit(tmp_path: Path, method: str) -> None:
    cfg = PretrainConfig(method=method, symmetric=method == "adco", **SMALL)
    ds = _tiles()
    full = fit(cfg, ds, ds.n_tiles, seed=3)
    ckpt = tmp_path / "ckpt.pt"
    part = fit(cfg, ds, ds.n_tiles, seed=3, checkpoint=ckpt, stop_after_epochs=1)
    assert part.metrics["epochs_done"] == 1 and ckpt.exists()
    resumed = fit(cfg, ds, ds.n_tiles, seed=3, checkpoint=ckpt, resume=True)
    assert resumed.metrics["epochs_done"] == 2
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a, b = full.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    if method == "adco":  # the bank was initialised from keys and then moved
        assert bool(resumed.method.bank.initialised)


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    ds = _tiles()
    cfg = PretrainConfig(**SMALL)
    fit(cfg, ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt", stop_after_epochs=1)
    other = PretrainConfig(**{**SMALL, "bank_tau": 0.05})
    with pytest.raises(ValueError, match=r"c.pt: checkpoint was written with a different pretrain config \(bank_tau"):
        fit(other, ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt", resume=True)


DDP_SCRIPT = """
import sys, torch
from histcode import distributed as D
from histcode.ssl.config import PretrainConfig
from histcode.ssl.data import TensorTiles
from histcode.ssl.trainer import fit
info = D.init_distributed("cpu")
g = torch.Generator().manual_seed(0)
ds = TensorTiles((torch.rand(48, 3, 40, 40, generator=g) * 255).to(torch.uint8), [16, 16, 16])
for method in ("adco", "simclr"):
    cfg = PretrainConfig(method=method, **{SMALL})
    res = fit(cfg, ds, ds.n_tiles, seed=4, dist_info=info)
    torch.save({"state": res.method.state_dict(), "history": res.history, "metrics": res.metrics},
               f"{sys.argv[1]}/{method}_rank{info.rank}.pt")
D.cleanup()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_gloo_ddp_keeps_ranks_identical(tmp_path: Path) -> None:
    """torchrun, 2 CPU ranks: different tiles per rank, yet weights, key net and bank stay identical
    (DDP all-reduces encoder gradients, the bank gradient is all-reduced, SimCLR gathers negatives)."""
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT).replace("{SMALL}", repr(SMALL)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for method in ("adco", "simclr"):
        r0, r1 = (torch.load(tmp_path / f"{method}_rank{r}.pt", weights_only=False) for r in (0, 1))
        # 48 tiles · 0.5 = 24 per epoch → 1 global step of 2 ranks × 8 per epoch
        assert r0["metrics"]["steps"] == 2
        assert [h["loss"] for h in r0["history"]] == [h["loss"] for h in r1["history"]]
        for k, v in r0["state"].items():
            assert torch.equal(v, r1["state"][k]), f"{method}: {k} differs between ranks"
        if method == "adco":
            assert r0["metrics"]["bank_init_keys"] >= 16


class _Unreadable(TensorTiles):
    """Every read fails, as when a manifest's relative slide paths do not resolve from here."""

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def,override]
        return self.tiles[i], "slides/a.svs: file not found"


def test_every_tile_read_failing_is_refused(tmp_path: Path) -> None:
    from histcode.ssl.trainer import TileReadError

    base = _tiles()
    ds = _Unreadable(base.tiles, base.n_tiles)
    with pytest.raises(TileReadError, match=r"every tile read of the first batch failed \(first: slides/a.svs"):
        fit(PretrainConfig(**SMALL), ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()  # nothing saved, so nothing to register


def test_auto_resume_restarts_on_other_config_or_data(tmp_path: Path) -> None:
    """The DVC stage resumes by default, but only the same run: other params or tiles start over."""
    ds = _tiles()
    cfg = PretrainConfig(**{**SMALL, "epochs": 1})
    first = fit(cfg, ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt", data_key="tiles-v1")
    again = fit(cfg, ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt", resume="auto", data_key="tiles-v1")
    assert again.history == first.history and again.metrics["resumed_at_epoch"] == 1  # resumed: no tile trained
    # ... and its metrics are those of the run that trained the encoder, not the ~0 s of the resumed call
    assert again.metrics["seconds_this_call"] < first.metrics["seconds"]
    a, f = again.metrics, first.metrics  # the checkpoint's clock stops before its own save
    assert 0 < a["seconds"] <= f["seconds"] and a["tiles_per_s"] >= f["tiles_per_s"] > 0
    assert a["seconds"] * a["tiles_per_s"] == pytest.approx(f["seconds"] * f["tiles_per_s"])  # the same tiles
    other = fit(cfg, ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt", resume="auto", data_key="tiles-v2")
    assert other.metrics["resumed_at_epoch"] == 0 and other.history == first.history  # retrained from epoch 1
    changed = PretrainConfig(**{**SMALL, "epochs": 1, "bank_tau": 0.05})
    assert fit(changed, ds, ds.n_tiles, seed=3, checkpoint=tmp_path / "c.pt", resume="auto",
               data_key="tiles-v2").metrics["resumed_at_epoch"] == 0
