"""The SQLite resume journal of a batch run: one row per item, the source of truth.

States: ``pending`` → ``running`` → ``done`` | ``failed``. A batch's outcomes (manifest record,
score, finish time) are committed in one transaction after its files are in place, so a
``kill -9`` at any moment leaves every item either committed once or still to do: items
found ``running`` when a run starts were interrupted and go back to ``pending``.
``completions`` counts commits of ``done`` and must end at 1 for every item. The journal
also answers the aggregate queries (counts, score statistics, histograms) in SQL so the
driver keeps O(K) memory. No engine, DataLoader or Ray here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nodeloom.batch.dataset import ItemRef
from nodeloom.errors import ValidationError

__all__ = ["Journal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    idx INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    score REAL,
    record TEXT,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
"""


class Journal:
    """Per-item state of one ``--out`` folder.

    Args:
        path: the SQLite file.
        fingerprint: identifies the workflow, binds and source; a journal written for
            another fingerprint is refused.

    Raises:
        ValidationError: the journal belongs to another batch.
    """

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=60.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('fingerprint', ?), ('created', ?)", (fingerprint, str(time.time())))
            elif row[0] != fingerprint:
                raise ValidationError(
                    f"`{self.path.parent}` holds a journal of another batch (other workflow, binds or input); "
                    "use another --out folder or delete it")

    def _tx(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type: Any, *_: Any) -> None:
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    def register(self, refs: Iterable[ItemRef]) -> None:
        """Add items not yet known (idempotent).

        Raises:
            ValidationError: a known position now holds another item (the source changed).
        """
        refs = list(refs)
        known = dict(self._db.execute("SELECT idx, item_id FROM items").fetchall())
        moved = [r for r in refs if r.index in known and known[r.index] != r.id]
        if moved:
            raise ValidationError(f"the input changed since the journal was written: position {moved[0].index} "
                                  f"was `{known[moved[0].index]}`, now `{moved[0].id}`")
        with self._tx():
            self._db.executemany("INSERT OR IGNORE INTO items (idx, item_id) VALUES (?, ?)",
                                 [(r.index, r.id) for r in refs if r.index not in known])

    def recover(self, indices: Iterable[int] | None = None) -> int:
        """Return interrupted (``running``) items to ``pending`` — all, or those in ``indices``
        (a shard leaves the items of shards running beside it alone); returns how many."""
        with self._tx():
            if indices is None:
                return self._db.execute("UPDATE items SET state='pending' WHERE state='running'").rowcount
            return sum(self._db.execute("UPDATE items SET state='pending' WHERE state='running' AND idx=?", (i,)).rowcount
                       for i in indices)

    def todo(self, *, retry_failed: bool = False) -> set[int]:
        """Positions still to run: pending (and running), plus failed ones when asked."""
        states = ("pending", "running", "failed") if retry_failed else ("pending", "running")
        marks = ",".join("?" * len(states))
        return {r[0] for r in self._db.execute(f"SELECT idx FROM items WHERE state IN ({marks})", states)}

    def start(self, indices: Iterable[int]) -> None:
        """Mark items ``running`` (one more attempt each)."""
        now = time.time()
        with self._tx():
            self._db.executemany("UPDATE items SET state='running', attempts=attempts+1, started=? WHERE idx=?",
                                 [(now, i) for i in indices])

    def finish(self, records: Iterable[dict[str, Any]], score_name: str | None = None) -> None:
        """Commit manifest records (``status`` done or failed) in one transaction."""
        now = time.time()
        rows = []
        for rec in records:
            score = (rec.get("scores") or {}).get(score_name) if score_name else None
            rows.append((rec["status"], 1 if rec["status"] == "done" else 0, rec.get("reason"), score,
                         json.dumps(rec, sort_keys=True), now, rec["index"]))
        with self._tx():
            self._db.executemany(
                "UPDATE items SET state=?, completions=completions+?, reason=?, score=?, record=?, finished=? WHERE idx=?",
                rows)

    def counts(self) -> dict[str, int]:
        """``{state: number of items}`` for every state present."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())

    def items(self) -> list[dict[str, Any]]:
        """Every item's journal row (idx, item_id, state, attempts, completions, reason), by position."""
        cur = self._db.execute("SELECT idx, item_id, state, attempts, completions, reason FROM items ORDER BY idx")
        keys = ("idx", "item_id", "state", "attempts", "completions", "reason")
        return [dict(zip(keys, row)) for row in cur]

    def records(self, indices: Iterable[int] | None = None) -> Iterator[dict[str, Any]]:
        """Committed manifest records, by position (all, or those in ``indices``)."""
        wanted = None if indices is None else set(indices)
        for idx, text in self._db.execute("SELECT idx, record FROM items WHERE record IS NOT NULL ORDER BY idx"):
            if wanted is None or idx in wanted:
                yield json.loads(text)

    def scores(self, chunk: int = 4096) -> Iterator[list[tuple[int, str, float]]]:
        """``(idx, item_id, score)`` of done items with a score, by position, in chunks."""
        cur = self._db.execute("SELECT idx, item_id, score FROM items WHERE state='done' AND score IS NOT NULL ORDER BY idx")
        while rows := cur.fetchmany(chunk):
            yield rows

    def score_stats(self) -> dict[str, Any] | None:
        """Count, mean, std, min and max of the scores of done items (None without scores)."""
        n, mean, sq, lo, hi = self._db.execute(
            "SELECT COUNT(score), AVG(score), AVG(score*score), MIN(score), MAX(score) FROM items "
            "WHERE state='done' AND score IS NOT NULL").fetchone()
        if not n:
            return None
        var = max(0.0, sq - mean * mean) * n / (n - 1) if n > 1 else 0.0
        return {"count": n, "mean": mean, "std": var ** 0.5, "min": lo, "max": hi}

    def histogram(self, column: str, bins: int, lo: float, hi: float) -> list[int]:
        """Counts of ``score`` or ``finished`` of done items in ``bins`` equal bins over [lo, hi]."""
        if column not in ("score", "finished"):
            raise ValidationError(f"`column` must be score or finished, got {column!r}")
        width = (hi - lo) / bins if hi > lo else 1.0
        counts = [0] * bins
        rows = self._db.execute(
            f"SELECT MIN(CAST((({column}) - ?) / ? AS INTEGER), ?), COUNT(*) FROM items "
            f"WHERE state='done' AND {column} IS NOT NULL GROUP BY 1", (lo, width, bins - 1))
        for b, count in rows:
            counts[max(0, int(b))] += count
        return counts

    def finish_span(self) -> tuple[float, float] | None:
        """First and last finish time of done items, or None."""
        lo, hi = self._db.execute("SELECT MIN(finished), MAX(finished) FROM items WHERE state='done'").fetchone()
        return None if lo is None else (lo, hi)

    def close(self) -> None:
        self._db.close()
