"""The evaluation report: one self-contained HTML file (plots and frames embedded as PNG).

It shows the summary table, a plot of every per-frame metric over time (where the model fails
shows up as dips or spikes at those frames), the best and the worst frames side by side
(reference | generated | amplified absolute difference), what was skipped and why, and the
settings used.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from motionxfer import __version__
from motionxfer.evaluation.evaluate import EvaluationResult, MetricResult, read_frame_pairs
from motionxfer.io.files import write_text

RANKING_METRICS = ("lpips_alex", "lpips_vgg", "ssim", "mask_ssim", "psnr")
DIFFERENCE_GAIN = 3
MIN_PANEL_HEIGHT = 192
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}"
    "th{background:#f2f2f2}img{max-width:100%}.note{color:#666;font-size:13px}"
    ".frames img{margin:4px 0}h2{margin-top:1.6em}"
)


def ranking_metric(result: EvaluationResult) -> MetricResult | None:
    """The per-frame metric the best/worst frames are chosen by (LPIPS first, then SSIM...)."""
    for name in RANKING_METRICS:
        if result.has(name):
            metric = result.metric(name)
            if metric.per_frame is not None and np.isfinite(metric.per_frame).any():
                return metric
    return None


def best_and_worst(metric: MetricResult, count: int) -> tuple[list[int], list[int]]:
    """Frame indices of the `count` best and worst finite values (best first in each list)."""
    values = np.asarray(metric.per_frame, np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]  # ascending
    if metric.higher_is_better:
        order = order[::-1]
    count = min(count, len(order) // 2 if len(order) > 1 else len(order))
    best = [int(i) for i in order[:count]]
    worst = [int(i) for i in order[::-1][:count]]
    return best, worst


def comparison_panel(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """reference | generated | |difference| x DIFFERENCE_GAIN, (H, 3W, 3) uint8 RGB."""
    difference = np.abs(reference.astype(np.int16) - generated.astype(np.int16)) * DIFFERENCE_GAIN
    panel = np.concatenate(
        [reference, generated, np.clip(difference, 0, 255).astype(np.uint8)], axis=1)
    if panel.shape[0] < MIN_PANEL_HEIGHT:
        scale = math.ceil(MIN_PANEL_HEIGHT / panel.shape[0])
        panel = cv2.resize(panel, (panel.shape[1] * scale, panel.shape[0] * scale),
                           interpolation=cv2.INTER_NEAREST)
    return panel


def png_data_uri(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode()


def metric_plot(metric: MetricResult, fps: float, marked: Sequence[int] = ()) -> str:
    """A PNG data URI of the metric over the frames (matplotlib, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(metric.per_frame, np.float64)
    figure = Figure(figsize=(9, 2.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    frames = np.arange(len(values))
    shown = np.where(np.isposinf(values), np.nan, values)
    axes.plot(frames, shown, linewidth=1.0, color="#1f5fa8")
    infinite = np.flatnonzero(np.isposinf(values))
    if infinite.size:
        top = np.nanmax(shown) if np.isfinite(shown).any() else 0.0
        axes.plot(infinite, np.full(infinite.size, top), "^", color="#888888", markersize=4,
                  label="identical (infinite)")
    if metric.value is not None:
        axes.axhline(metric.value, color="#d04020", linestyle="--", linewidth=0.8,
                     label=f"mean {metric.value:.4g}")
    for index in marked:
        if 0 <= index < len(values) and np.isfinite(values[index]):
            axes.plot([index], [values[index]], "o", color="#d04020", markersize=4)
    direction = {True: "higher is better", False: "lower is better", None: "for context"}
    unit = f" [{metric.unit}]" if metric.unit else ""
    axes.set_title(f"{metric.label}{unit} ({direction[metric.higher_is_better]})", fontsize=10)
    axes.set_xlabel(f"frame ({fps:.3g} fps)", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _format(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.4g}"


def render_html(result: EvaluationResult, examples: int = 3) -> str:
    """The whole report as one HTML string (decodes the best and worst frames)."""
    escape = html.escape
    ranking = ranking_metric(result)
    best, worst = best_and_worst(ranking, examples) if ranking else ([], [])
    pairs = read_frame_pairs(result, best + worst) if best or worst else {}
    source = (f"<b>generated</b> {escape(str(result.generated))}<br>"
              f"<b>reference</b> {escape(str(result.reference))}")
    if result.mask:
        source += f"<br><b>mask</b> {escape(str(result.mask))}"
    source += (f"<br>{result.frames} frames compared at {result.frame_size[0]}x"
               f"{result.frame_size[1]}, {result.fps:.3g} fps")
    if result.config.reference_first_frame:
        source += f", reference from frame {result.config.reference_first_frame}"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>motionxfer evaluation: {escape(result.generated.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Evaluation report</h1>",
        f"<p>{source}</p>",
        "<h2>Summary</h2><table>",
        "<tr><th>metric</th><th>value</th><th>better</th><th>notes</th></tr>",
    ]
    for metric in result.metrics:
        arrow = {True: "↑ higher", False: "↓ lower", None: "context"}[metric.higher_is_better]
        unit = f" {metric.unit}" if metric.unit and metric.value is not None else ""
        parts.append(f"<tr><td>{escape(metric.label)}</td><td>{_format(metric.value)}"
                     f"{escape(unit)}</td><td>{arrow}</td><td class='note'>"
                     f"{escape(metric.note)}</td></tr>")
    parts.append("</table>")
    if result.skipped:
        parts.append("<h3>Skipped</h3><ul>")
        parts += [f"<li><b>{escape(name)}</b>: {escape(reason)}</li>"
                  for name, reason in result.skipped]
        parts.append("</ul>")
    if result.warnings:
        parts.append("<h3>Warnings</h3><ul>")
        parts += [f"<li>{escape(warning)}</li>" for warning in result.warnings]
        parts.append("</ul>")
    if ranking is not None:
        parts.append(_frames_section(ranking, best, worst, pairs))
    parts.append("<h2>Per-frame metrics</h2><p class='note'>Red dots: the frames shown above."
                 " Dashed: the summary value.</p>")
    for metric in result.metrics:
        if metric.per_frame is not None and np.isfinite(metric.per_frame).any():
            parts.append(f"<img alt='{escape(metric.label)}' "
                         f"src='{metric_plot(metric, result.fps, best + worst)}'>")
    settings = dataclasses.asdict(result.config)
    parts.append("<h2>Settings</h2><table>")
    parts += [f"<tr><td>{escape(key)}</td><td>{escape(str(value))}</td></tr>"
              for key, value in settings.items()]
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    parts.append(f"</table><p class='note'>motionxfer {escape(__version__)}, {created}. "
                 "Definitions and sources of every metric: docs/metrics.md.</p></body></html>")
    return "\n".join(parts)


def _frames_section(ranking: MetricResult, best: list[int], worst: list[int],
                    pairs: dict[int, tuple[np.ndarray, np.ndarray]]) -> str:
    escape = html.escape
    parts = [
        f"<h2>Best and worst frames by {escape(ranking.label)}</h2>",
        f"<p class='note'>reference | generated | absolute difference x{DIFFERENCE_GAIN}</p>",
        "<div class='frames'>",
    ]
    for title, indices in (("Worst", worst), ("Best", best)):
        parts.append(f"<h3>{title}</h3>")
        for index in indices:
            if index not in pairs:
                continue
            value = ranking.per_frame[index] if ranking.per_frame is not None else None
            panel = comparison_panel(*pairs[index])
            parts.append(f"<p>frame {index}: {escape(ranking.label)} {_format(value)}<br>"
                         f"<img alt='frame {index}' src='{png_data_uri(panel)}'></p>")
    parts.append("</div>")
    return "\n".join(parts)


def write_html_report(result: EvaluationResult, path: Path, examples: int = 3) -> Path:
    """Write the report to `path` (atomically); returns the path."""
    path = Path(path)
    write_text(path, render_html(result, examples))
    return path
