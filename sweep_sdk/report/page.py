"""The report's one self-contained HTML page: summary, figures inline as data URIs, tables."""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Sequence

from sweep_core.convert import unstructure
from sweep_sdk.report.data import SUMMARY_ROWS, Attempt, RunData
from sweep_sdk.report.figures import FigureFile

SLOWEST = 10
"""Attempts listed in the table of the slowest."""

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1240px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { border-bottom: 2px solid #ccc; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; max-width: 900px; }
.state-settled { color: #2a7a2a; } .state-running { color: #b36b00; }
.failure { color: #b22222; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _number(value: int | float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def _summary_table(summary: dict[str, int | float]) -> str:
    rows = "".join(
        f'<tr><th scope="row">{html.escape(text)}</th>'
        f'<td class="num" data-key="{key}" data-value="{summary[key]}">'
        f"{_number(summary[key])}</td></tr>"
        for key, text in SUMMARY_ROWS
    )
    return f'<table id="summary" class="summary">{rows}</table>'


def _slowest_table(data: RunData) -> str:
    slowest = sorted(data.attempts, key=lambda a: (-a.duration_ms, a.shard, a.attempt))[:SLOWEST]
    if not slowest:
        return "<p>No shard has finished yet.</p>"
    head = (
        "<thead><tr><th>shard</th><th>attempt</th><th>status</th><th>points</th>"
        "<th>duration (ms)</th><th>ms per point</th><th>error code</th></tr></thead>"
    )
    rows = "".join(
        f"<tr><td class='num'>{a.shard}</td><td class='num'>{a.attempt}</td>"
        f"<td{' class=failure' if a.status != 'success' else ''}>{html.escape(a.status)}</td>"
        f"<td class='num'>{a.point_count:,}</td><td class='num'>{a.duration_ms:,.1f}</td>"
        f"<td class='num'>{a.duration_ms / max(a.point_count, 1):,.3f}</td>"
        f"<td>{html.escape(a.error_code or '')}</td></tr>"
        for a in slowest
    )
    return f'<table id="slowest" class="slowest">{head}<tbody>{rows}</tbody></table>'


def _failure_table(data: RunData) -> str:
    failures = [a for a in data.attempts if a.status != "success"]
    if not failures:
        return "<p>No attempt failed.</p>"
    final = Counter(a.error_code or "UNKNOWN" for a in data.failed_shards.values())
    by_code: dict[str, list[Attempt]] = {}
    for a in failures:
        by_code.setdefault(a.error_code or "UNKNOWN", []).append(a)
    head = (
        "<thead><tr><th>error code</th><th>shards failed</th><th>failed attempts</th>"
        "<th>points in failed shards</th><th>first message</th></tr></thead>"
    )
    rows = []
    for code, attempts in sorted(by_code.items()):
        points = sum(a.point_count for a in data.failed_shards.values() if a.error_code == code)
        first = min(attempts, key=lambda a: (a.shard, a.attempt))
        message = f"shard {first.shard}: {first.error_message or ''}"
        rows.append(
            f"<tr><td class='failure'>{html.escape(code)}</td>"
            f"<td class='num'>{final[code]:,}</td><td class='num'>{len(attempts):,}</td>"
            f"<td class='num'>{points:,}</td><td>{html.escape(message)}</td></tr>"
        )
    return f'<table id="failures" class="failures">{head}<tbody>{"".join(rows)}</tbody></table>'


def _figure_html(figure: FigureFile) -> str:
    encoded = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (
        f'<figure id="figure-{figure.name}"><img src="data:image/png;base64,{encoded}" '
        f'width="{figure.width}" height="{figure.height}" alt="{html.escape(figure.title)}">'
        f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
    )


def _axes_text(data: RunData) -> str:
    parts = []
    for name, axis in data.manifest.spec.axes.items():
        form = axis.form
        detail = unstructure(getattr(axis, form))
        if form == "values" and len(detail) > 6:
            detail = f"{len(detail)} values"
        parts.append(
            f"{name} ({form} {json.dumps(detail) if not isinstance(detail, str) else detail})"
        )
    return "; ".join(parts)


def render_html(
    data: RunData, summary: dict[str, int | float], figures: Sequence[FigureFile]
) -> str:
    """The page: summary, figures and tables, every image inline."""
    manifest, spec = data.manifest, data.manifest.spec
    by_name = {f.name: f for f in figures}
    state = (
        '<span class="state-settled">settled</span>'
        if data.status.settled
        else '<span class="state-running">still running: numbers will change</span>'
    )
    sampling = spec.sampling.method + (f", n = {spec.sampling.n:,}" if spec.sampling.n else "")
    meta = (
        f"{html.escape(spec.label or 'no label')} · kernel <b>{html.escape(spec.kernel)}</b> · "
        f"{html.escape(sampling)} sampling · created {html.escape(manifest.created_at)} · {state}"
    )
    sections = [
        f"<h1>Run {html.escape(manifest.run_id)}</h1>",
        f'<p class="meta">{meta}</p>',
        f'<p class="meta">Axes: {html.escape(_axes_text(data))}</p>',
        "<h2>Summary</h2>",
        _summary_table(summary),
        f"<h2>{html.escape(data.metric)}</h2>",
    ]
    if "metric" in by_name:
        sections.append(_figure_html(by_name["metric"]))
    else:
        sections.append("<p>No point has been computed yet.</p>")
    sections.append("<h2>Execution</h2>")
    sections += [_figure_html(by_name[n]) for n in ("timeline", "durations") if n in by_name]
    sections += ["<h3>Slowest attempts</h3>", _slowest_table(data), "<h2>Failures</h2>"]
    if "failures" in by_name:
        sections.append(_figure_html(by_name["failures"]))
    sections.append(_failure_table(data))
    request = json.dumps(unstructure(spec), indent=2)
    sections += ["<h2>Request</h2>", f"<pre>{html.escape(request)}</pre>"]
    body = "\n".join(sections)
    title = html.escape(f"sweep report: {manifest.run_id}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
