"""Launcher for ComfyUI's own execution test suite: ``python main.py ARGS`` runs ``nodeloom serve ARGS``.

The suite's fixtures start the server as ``python main.py --output-directory D --listen ...
--port P --extra-model-paths-config tests/execution/extra_model_paths.yaml --cpu
[--cache-lru N]``; this file stands in for ComfyUI's ``main.py`` and replaces itself
(``exec``, same PID) with nodeloom's server, so the fixtures' ``kill`` reaches it.

ComfyUI keeps its history in memory and the suite expects every server start to begin with
an empty history (``test_offset_beyond_history_length_returns_empty``); nodeloom's history
is durable, so each launch gets a queue database of its own.

Set ``NODELOOM_PYTHON`` to the interpreter that has nodeloom installed (default: this one).
"""

import os
import sys
import tempfile

python = os.environ.get("NODELOOM_PYTHON", sys.executable)
db = os.path.join(tempfile.mkdtemp(prefix="nodeloom-queue-"), "queue.sqlite3")
os.execv(python, [python, "-m", "nodeloom.cli.main", "serve", "--queue-db", db, *sys.argv[1:]])
