"""The dashboard's page as one self-contained file: report/index.html, with the finished views of one or more runs
embedded, its script, style and chart library inlined, so it opens offline and can be copied off a cluster alone.

Used by `python -m bqnn.report DIR` (and `--compare DIR2`):

    html = report_page([Run("runs/demo")])     # the same page the dashboard serves, with its data inside

Every candidate is in the page's table; the curve and drawing shown on a click are kept once per block (a repeat
shows its block's), for up to MAX_DETAILS blocks (the best by reward beyond that; the page says when one is missing).
No torch.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..config import from_json
from .server import STATIC
from .views import Run, _pruning, block_view

MAX_DETAILS = 20_000


def _run_data(run: Run) -> dict[str, Any]:
    s = run.state()
    cfg = from_json(s.config_json)
    trained = s.candidates[s.candidates["repeat"] == 0]
    trained = trained[np.argsort(-trained["reward"], kind="stable")][:MAX_DETAILS]
    cutoffs = _pruning(cfg, s.candidates)["cutoffs"] if cfg.pruning.rule != "none" else None
    details = {row["hash"].decode(): block_view(row, s.max_index, cfg.pruning.rungs, cfg.trainer.epochs, cutoffs)
               for row in trained}
    overview = run.overview()
    overview["running"], overview["why"] = False, "a report: the search as it was when the report was written"
    return {"overview": overview, "candidates": run.candidates(0), "details": details}


def _inline(html: str, tag: str, name: str, text: str) -> str:
    return html.replace(tag, f"<{'style' if name.endswith('.css') else 'script'}>\n{text}\n"
                             f"</{'style' if name.endswith('.css') else 'script'}>")


def report_page(runs: list[Run]) -> str:
    html = (STATIC / "index.html").read_text()
    data = json.dumps({"runs": [_run_data(r) for r in runs]}, allow_nan=False).replace("</", "<\\/")
    html = _inline(html, '<link rel="stylesheet" href="static/app.css">', "app.css", (STATIC / "app.css").read_text())
    html = _inline(html, '<script src="static/chart.umd.min.js"></script>', "chart.js",
                   (STATIC / "chart.umd.min.js").read_text())
    app = (STATIC / "app.js").read_text()
    return html.replace('<script src="static/app.js"></script>',
                        f"<script>window.BQNN_DATA = {data};</script>\n<script>\n{app}\n</script>")
