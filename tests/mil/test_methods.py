"""CLAM-SB, DSMIL, MIL-RNN and TransMIL against reference computations written out by hand on tiny bags,
and streamed inference (chunks, h5 files) against the full forward for every method."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from histcode.mil.bags import BagChunks
from histcode.mil.methods import transmil as transmil_mod
from histcode.mil.methods.clam import pseudo_labels, smooth_top1_svm
from histcode.mil.methods.mil_rnn import top_s
from histcode.mil.methods.transmil import NystromAttention, iterative_pinv
from histcode.mil.model import MilClassifier, build_mil
from histcode.mil.pooling import create_pooling, pooling_names

SMALL = {"hidden": 8, "attn_hidden": 6, "dropout": 0.0, "heads": 2, "landmarks": 8, "inst_b": 3, "top_s": 4}


def _model(name: str, d: int = 5, seed: int = 0, **kw: object) -> MilClassifier:
    torch.manual_seed(seed)
    return MilClassifier(create_pooling(name, d, **{**SMALL, **kw})).eval()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_clam_pseudo_labels_are_top_and_bottom_b_by_attention() -> None:
    scores = torch.tensor([0.3, -2.0, 5.0, 1.0, -0.5, 4.0, 0.0])
    idx, targets = pseudo_labels(scores, 2)
    assert idx.tolist() == [2, 5, 1, 4] and targets.tolist() == [1, 1, 0, 0]
    idx, targets = pseudo_labels(scores[:5], 8)  # B shrinks to N // 2: the sets never overlap
    assert idx.tolist() == [2, 3, 1, 4] and targets.tolist() == [1, 1, 0, 0]


def test_smooth_svm_matches_its_formula_and_tends_to_the_hinge() -> None:
    s = torch.tensor([[2.0, 0.5], [0.2, 0.1], [-1.0, 3.0]])
    y = torch.tensor([0, 1, 1])
    ref = np.mean([math.log(math.exp(0.0) + math.exp(1 + 0.5 - 2.0)),
                   math.log(math.exp(1 + 0.2 - 0.1) + math.exp(0.0)),
                   math.log(math.exp(1 - 1.0 - 3.0) + math.exp(0.0))])
    assert float(smooth_top1_svm(s, y)) == pytest.approx(ref, rel=1e-6)
    hinge = np.mean([max(0.0, 1 + 0.5 - 2.0), max(0.0, 1 + 0.2 - 0.1), max(0.0, 1 - 1.0 - 3.0)])
    assert float(smooth_top1_svm(s, y, tau=1e-3)) == pytest.approx(hinge, abs=1e-3)


@pytest.mark.parametrize(("inst_loss", "label"), [("ce", 1), ("svm", 0)])
def test_clam_loss_is_weighted_bag_plus_instance_loss_of_the_slide_class(inst_loss: str, label: int) -> None:
    model = _model("clam_sb", inst_loss=inst_loss)
    model.train()
    bag = torch.randn(11, 5)
    pool = model.pooling
    out = pool(model._z(bag))
    e = out.extra["embedded"].detach().numpy()
    s = out.scores.detach().numpy()
    order = np.argsort(-s)
    idx, tgt = np.r_[order[:3], order[::-1][:3]], np.r_[1, 1, 1, 0, 0, 0]
    clf = pool.instance_classifiers[label]
    logits = e[idx] @ clf.weight.detach().numpy().T + clf.bias.detach().numpy()
    if inst_loss == "ce":
        inst = -_log_softmax(logits)[np.arange(6), tgt].mean()
    else:
        margin = 1.0 - np.eye(2)[tgt]
        inst = np.mean(np.log(np.exp(margin + logits - logits[np.arange(6), tgt][:, None]).sum(1)))
    bag_logits = model.head(out.pooled).detach().numpy()
    bag_ce = -_log_softmax(bag_logits)[label]
    loss = pool.loss(out, model.head, label)
    assert loss.item() == pytest.approx(0.7 * bag_ce + 0.3 * inst, rel=1e-5)
    loss.backward()
    other = pool.instance_classifiers[1 - label]
    assert other.weight.grad is None  # only the slide class's instance classifier learns from it
    assert clf.weight.grad is not None and clf.weight.grad.abs().sum() > 0


def test_dsmil_attends_to_the_critical_instance() -> None:
    model = _model("dsmil")
    pool = model.pooling
    bag = torch.randn(9, 5)
    with torch.no_grad():
        z = model._z(bag)
        out = pool(z)
        e = pool.embed(z).numpy()
    w0, b0 = pool.instance_classifier.weight.detach().numpy(), pool.instance_classifier.bias.detach().numpy()
    c = e @ w0.T + b0
    crit = c.argmax(0)
    q1, q2 = pool.query[0], pool.query[2]
    q = np.tanh(np.maximum(e @ q1.weight.detach().numpy().T + q1.bias.detach().numpy(), 0)
                @ q2.weight.detach().numpy().T + q2.bias.detach().numpy())
    s = q @ q[crit].T / math.sqrt(q.shape[1])  # (N, C)
    a = np.exp(s - s.max(0)) / np.exp(s - s.max(0)).sum(0)
    b = a.T @ e
    assert out.extra["critical"].tolist() == crit.tolist()
    np.testing.assert_allclose(out.pooled.numpy(), b.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.weights.numpy(), a[:, 1], rtol=1e-5, atol=1e-7)  # tumour stream heatmap
    np.testing.assert_allclose(out.extra["max_logits"].numpy(), c[crit, [0, 1]], rtol=1e-5)
    head = model.head(out.pooled).detach().numpy()
    prob = 0.5 * np.exp(_log_softmax(head)) + 0.5 * np.exp(_log_softmax(c[crit, [0, 1]]))
    np.testing.assert_allclose(model.forward_full(bag).prob.detach().numpy(), prob, rtol=1e-5)
    y = 1
    ref_loss = 0.5 * -_log_softmax(head)[y] + 0.5 * -_log_softmax(c[crit, [0, 1]])[y]
    assert pool.loss(out, model.head, y).item() == pytest.approx(ref_loss, rel=1e-5)


def test_mil_rnn_feeds_the_top_s_tiles_in_decreasing_order_to_the_rnn() -> None:
    assert top_s(torch.tensor([0.1, 0.9, 0.5, 0.7]), 3).tolist() == [1, 3, 2]
    assert top_s(torch.tensor([0.1, 0.9]), 5).tolist() == [1, 0]
    model = _model("mil_rnn")
    pool = model.pooling
    bag = torch.randn(13, 5)
    with torch.no_grad():
        z = model._z(bag)
        out = pool(z)
        e = pool.embed(z).numpy()
    tc = pool.tile_classifier
    logits = e @ tc.weight.detach().numpy().T + tc.bias.detach().numpy()
    odds = logits[:, 1] - logits[:, 0]
    top = np.argsort(-odds)[:4]
    assert out.extra["top"].tolist() == top.tolist()
    rnn = {k: v.detach().numpy() for k, v in pool.rnn.named_parameters()}
    h = np.zeros(6)
    for x in e[top]:
        h = np.maximum(rnn["weight_ih_l0"] @ x + rnn["bias_ih_l0"] + rnn["weight_hh_l0"] @ h + rnn["bias_hh_l0"], 0)
    np.testing.assert_allclose(out.pooled.numpy(), h, rtol=1e-5, atol=1e-6)
    p = 1 / (1 + np.exp(-odds))
    np.testing.assert_allclose(out.weights.numpy(), p / p.sum(), rtol=1e-5)
    # max-pooling MIL: the tile classifier's loss is the slide label on the single most tumour-like tile
    y = 0
    ref = -_log_softmax(logits[top[0]])[y] - _log_softmax(model.head(out.pooled).detach().numpy())[y]
    assert pool.loss(out, model.head, y).item() == pytest.approx(ref, rel=1e-5)


def test_iterative_pinv_and_nystrom_reproduce_exact_attention() -> None:
    torch.manual_seed(0)
    x = torch.softmax(torch.randn(2, 6, 6), -1) + torch.eye(6)
    torch.testing.assert_close(iterative_pinv(x, iters=30), torch.linalg.pinv(x), rtol=1e-4, atol=1e-4)
    # every token twice: the segment means are the distinct tokens and Nyström is exact (Xiong et al. §3)
    att = NystromAttention(8, heads=2, landmarks=5, pinv_iters=40).eval()
    with torch.no_grad():
        att.res_conv.weight.zero_()
        tokens = torch.randn(5, 8).repeat_interleave(2, dim=0)  # n = 10 > m = 5: the Nyström path
        out, row = att(tokens, cls_row=True)
        q, k, v = att.to_qkv(tokens).view(10, 3, 2, 4).permute(1, 2, 0, 3)
        a = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)
        ref = att.to_out((a @ v).permute(1, 0, 2).reshape(10, 8))
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(row, a[:, 0].mean(0), rtol=1e-3, atol=1e-4)


def test_exact_attention_up_to_exact_max_then_nystrom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between m and exact_max tokens the layer computes exact softmax attention (no pseudo-inverse); past
    exact_max it switches to Nyström, and an old model (exact_max None) keeps the m cut-off."""
    torch.manual_seed(3)
    att = NystromAttention(8, heads=2, landmarks=4, exact_max=12).eval()
    assert NystromAttention(8, heads=2, landmarks=4).exact_max == 4
    calls = []
    monkeypatch.setattr(transmil_mod, "iterative_pinv", lambda x, iters: calls.append(x.shape) or torch.linalg.pinv(x))
    with torch.no_grad():
        att.res_conv.weight.zero_()
        x = torch.randn(12, 8)
        out, row = att(x, cls_row=True)
        q, k, v = att.to_qkv(x).view(12, 3, 2, 4).permute(1, 2, 0, 3)
        a = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)
        torch.testing.assert_close(out, att.to_out((a @ v).permute(1, 0, 2).reshape(12, 8)), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(row, a[:, 0].mean(0), rtol=1e-5, atol=1e-6)
        assert calls == []
        att(torch.randn(13, 8))
    assert calls == [(2, 4, 4)]
    model = _model("transmil", landmarks=4)
    assert model.pooling.hparams()["exact_max"] == 4


def test_nystrom_row_chunks_equal_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    att = NystromAttention(8, heads=2, landmarks=4).eval()
    x = torch.randn(37, 8)
    with torch.no_grad():
        whole, row = att(x, cls_row=True)
        monkeypatch.setattr(transmil_mod, "CHUNK", 5)
        chunked, row_c = att(x, cls_row=True)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(row_c, row, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [3, 12, 40])  # shorter than the residual kernel's reach, exact, Nyström
def test_class_token_alone_equals_row_0_of_the_whole_layer(n: int) -> None:
    """The last layer computes only the class token's output (``cls_only``): the same values and the same
    gradients as row 0 of the whole layer, residual sequence convolution included."""
    torch.manual_seed(n)
    att = NystromAttention(8, heads=2, landmarks=4, exact_max=12, residual_kernel=33)
    x = torch.randn(n, 8, requires_grad=True)
    whole, row = att(x, cls_row=True)
    alone, row_1 = att(x, cls_row=True, cls_only=True)
    assert alone.shape == (1, 8)
    torch.testing.assert_close(alone, whole[:1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(row_1, row, rtol=1e-5, atol=1e-6)
    (g_whole,) = torch.autograd.grad((whole[0] * torch.arange(8.0)).sum() + row[1:].sum(), x)
    (g_alone,) = torch.autograd.grad((alone[0] * torch.arange(8.0)).sum() + row_1[1:].sum(), x)
    torch.testing.assert_close(g_alone, g_whole, rtol=1e-4, atol=1e-5)


def test_ppeg_is_the_sum_of_its_three_depthwise_convolutions() -> None:
    ppeg = transmil_mod.PPEG(6)
    x = torch.randn(1 + 25, 6)
    grid = x[1:].T.reshape(1, 6, 5, 5)
    ref = grid + sum(conv(grid) for conv in ppeg.convs)
    with torch.no_grad():
        out = ppeg(x, 5)
        torch.testing.assert_close(out[1:], ref.flatten(2)[0].T, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[0], x[0])


def test_transmil_shapes_and_permutation_behaviour() -> None:
    model = _model("transmil", landmarks=32)
    bag = torch.randn(16, 5)  # a square: no padding tokens
    with torch.no_grad():
        out = model.forward_full(bag)
        assert out.logits.shape == (1, 2) and out.scores.shape == (16,) and out.weights.shape == (16,)
        assert float(out.weights.sum()) == pytest.approx(1.0) and (out.weights >= 0).all()
        perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
        shuffled = model.forward_full(bag[perm])
        assert not torch.allclose(shuffled.logits, out.logits, atol=1e-4)  # PPEG makes it order-aware
        pool = model.pooling
        for conv in pool.ppeg.convs:  # without PPEG and the sequence convolution of V: a set function
            conv.weight.zero_()
            conv.bias.zero_()
        pool.attn1.res_conv.weight.zero_()
        pool.attn2.res_conv.weight.zero_()
        ref = model.forward_full(bag)
        shuffled = model.forward_full(bag[perm])
        torch.testing.assert_close(shuffled.logits, ref.logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(shuffled.scores, ref.scores[perm], rtol=1e-4, atol=1e-6)
        odd = model.forward_full(torch.randn(23, 5))  # padded to 25 tokens: scores only for the real tiles
        assert odd.scores.shape == (23,)


@pytest.mark.parametrize("name", pooling_names())
def test_streaming_equals_full_forward(name: str, tmp_path: Path) -> None:
    model = _model(name, landmarks=16)
    bag = torch.randn(70, 5) * 2
    path = tmp_path / "bag.h5"
    with h5py.File(path, "w") as f:
        f["features"] = bag.numpy()
        f["coords"] = np.zeros((70, 2), np.int32)
    with torch.no_grad():
        full = model.forward_full(bag)
    for chunks in (list(bag.split(9)), BagChunks(path, 16)):
        stream = model.predict_stream(chunks)
        torch.testing.assert_close(stream.prob, full.prob, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stream.weights, full.weights, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stream.scores, full.scores, rtol=1e-5, atol=1e-5)
    if name == "dsmil":
        with pytest.raises(TypeError, match="two passes"):
            model.predict_stream(iter(bag.split(9)))


@pytest.mark.parametrize("name", pooling_names())
def test_every_method_trains_and_round_trips_through_its_spec(name: str) -> None:
    model = _model(name)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    bag = torch.randn(30, 5)
    first = model.training_loss(bag, 1).item()
    for _ in range(15):
        loss = model.training_loss(bag, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.training_loss(bag, 1).item() < first
    model.eval()
    clone = build_mil(model.spec())
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone(bag), model(bag))
        assert F.softmax(model(bag), -1).shape == (1, 2)


def test_table1_headline_sorts_baselines_by_their_paired_interval() -> None:
    """The run description's first sentence: a baseline is ahead of or behind HistCode only when its ΔAUC interval
    excludes 0; the rest are named as within the noise."""
    from histcode.mil.report import headline

    def row(method: str, d: float, lo: float, hi: float) -> dict:
        return {"method": method, "n": 48, "auc": 0.9, "auc_ci_low": 0.8, "auc_ci_high": 1.0,
                "balanced_accuracy": 0.85, "balanced_accuracy_ci_low": 0.75, "balanced_accuracy_ci_high": 0.95,
                "delta_auc": d, "delta_auc_ci_low": lo, "delta_auc_ci_high": hi}

    rows = [row("clam_sb", 0.0, 0.0, 0.0), row("max", 0.3, 0.16, 0.47), row("mean", -0.05, -0.09, -0.01),
            row("abmil", 0.01, -0.04, 0.05)]
    assert headline(rows, "clam_sb") == (
        "**HistCode (clam_sb)**: AUC 0.900 [0.800, 1.000], balanced accuracy 0.850 [0.750, 0.950] on 48 held-out "
        "slides. Paired ΔAUC, 95 % CI: ahead of max (+0.300 [+0.160, +0.470]); behind mean (-0.050 [-0.090, "
        "-0.010]); not distinguishable from abmil (ΔAUC interval spans 0).")
    assert headline(rows[:1], "clam_sb").endswith("on 48 held-out slides.")  # no baseline: no comparison clause
