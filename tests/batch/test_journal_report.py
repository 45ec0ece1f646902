"""Journal states and resume bookkeeping; streaming Top-K against the exact top-K; the plot."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nodeloom.batch.dataset import ItemRef
from nodeloom.batch.journal import Journal
from nodeloom.batch.report import draw_plot, node_metrics, streaming_top_k
from nodeloom.errors import ValidationError
from nodeloom.ops.topk import topk


def _refs(n):
    return [ItemRef(i, f"item{i}", "seed", row={"seed": i}) for i in range(n)]


def _record(i, status="done", score=None):
    return {"type": "item", "index": i, "item": f"item{i}", "status": status, "reason": None if status == "done" else "x",
            "outputs": {}, "scores": {} if score is None else {"score": score}, "metrics": {}}


def test_states_recover_and_retry(tmp_path):
    j = Journal(tmp_path / "j.sqlite", "fp")
    j.register(_refs(5))
    j.register(_refs(5))  # idempotent
    assert j.todo() == {0, 1, 2, 3, 4}
    j.start([0, 1, 2])
    j.finish([_record(0), _record(1, "failed")])
    assert j.counts() == {"done": 1, "failed": 1, "running": 1, "pending": 2}
    j.start([3])
    assert j.recover([3, 4]) == 1 and j.counts()["running"] == 1  # only the given positions
    assert j.recover() == 1
    assert j.todo() == {2, 3, 4} and j.todo(retry_failed=True) == {1, 2, 3, 4}
    rows = {r["idx"]: r for r in j.items()}
    assert rows[0]["completions"] == 1 and rows[2]["attempts"] == 1 and rows[1]["reason"] == "x"
    assert [r["index"] for r in j.records()] == [0, 1]
    j.close()


def test_journal_refuses_another_batch_or_a_changed_input(tmp_path):
    Journal(tmp_path / "j.sqlite", "fp").register(_refs(3))
    with pytest.raises(ValidationError, match="another batch"):
        Journal(tmp_path / "j.sqlite", "other")
    j = Journal(tmp_path / "j.sqlite", "fp")
    with pytest.raises(ValidationError, match="input changed"):
        j.register([ItemRef(1, "renamed", "seed")])


def test_streaming_top_k_equals_exact_top_k(tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    scores = np.round(rng.normal(size=n), 2)  # rounding makes ties; the earlier item must win them
    j = Journal(tmp_path / "j.sqlite", "fp")
    j.register(_refs(n))
    j.finish([_record(i, score=float(s)) for i, s in enumerate(scores)], "score")
    for largest in (True, False):
        exact_idx, exact_val = topk(scores, 25, largest=largest)
        got = streaming_top_k(j, 25, largest)
        assert [g["index"] for g in got] == exact_idx.tolist()
        assert [g["score"] for g in got] == exact_val.tolist()
        assert [g["rank"] for g in got] == list(range(1, 26))
    # chunked reading pushes many batches through the heap
    assert len(list(j.scores(chunk=128))) == -(-n // 128)
    stats = j.score_stats()
    assert stats["count"] == n and stats["mean"] == pytest.approx(scores.mean())
    assert stats["std"] == pytest.approx(scores.std(ddof=1))
    lo, hi = float(scores.min()), float(scores.max())
    hist = j.histogram("score", 10, lo, hi)
    expected = np.bincount(np.minimum(((scores - lo) / ((hi - lo) / 10)).astype(int), 9), minlength=10)
    assert sum(hist) == n and hist == expected.tolist()


def test_plot_and_node_metrics(tmp_path):
    j = Journal(tmp_path / "j.sqlite", "fp")
    j.register(_refs(4))
    j.finish([_record(i, score=float(i)) for i in range(4)], "score")
    png = draw_plot(j, tmp_path / "s.png", "score")
    img = Image.open(png)
    assert img.size == (900, 380) and len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 3
    recs = [{"metrics": {"batch_size": 2, "nodes": {"5": {"class_type": "X", "cached": False, "wall_s": 1.0,
                                                          "bytes_in": 2e9, "bytes_out": 0}}}}] * 2
    m = node_metrics(recs)["5"]
    assert m["runs"] == 1.0 and m["wall_s"] == 1.0 and m["bandwidth_gbps"] == 2.0
