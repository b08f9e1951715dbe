"""``--report report.html``: one self-contained page (inline SVG and CSS, no network).

Three pictures of a run: the fleet's versions over (virtual) time with every gate decision
marked, each wave's confirmed / failed / silent counts, and the decision log with the
numbers each decision was based on (where the rollout paused, and why).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from otaforge.fleet.engine import Sample
from otaforge.fleet.result import SimResult

W, H, PAD = 760, 300, 48
COLOURS = {"old": "#9aa5b1", "new": "#f0b429", "confirmed": "#2f9e44", "bricked": "#c92a2a",
           "failed": "#e8590c", "silent": "#7048e8", "stuck": "#868e96"}
# the channel controller's decisions and the server rollout's (create, advance, ...)
ACTION_COLOURS = {"start_wave": "#1971c2", "create": "#1971c2", "gate_passed": "#2f9e44",
                  "advance": "#2f9e44", "pause": "#c92a2a", "abort": "#c92a2a",
                  "revert": "#7048e8", "resume": "#1971c2", "complete": "#2f9e44"}


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def versions_svg(samples: Sequence[Sample], decisions: Sequence[dict[str, object]],
                 devices: int) -> str:
    """Lines of devices on the old release, on the new one, confirmed, bricked; decisions
    as vertical markers."""
    if not samples:
        return "<p>no samples</p>"
    t_max = max(samples[-1].t_s, 1.0)

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * t / t_max

    def y(n: int) -> float:
        return H - PAD + -(H - 2 * PAD) * n / max(devices, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="versions over time">',
             f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" '
             'fill="#f8f9fa" stroke="#dee2e6"/>']
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        n = round(devices * frac)
        parts.append(f'<text x="{PAD - 6}" y="{y(n) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{n}</text>')
        t = t_max * frac
        parts.append(f'<text x="{x(t):.1f}" y="{H - PAD + 16}" text-anchor="middle" '
                     f'font-size="11">{_hours(t)}</text>')
    for decision in decisions:
        t = float(str(decision["t_s"]))
        colour = ACTION_COLOURS.get(str(decision["action"]), "#495057")
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{PAD}" y2="{H - PAD}" '
                     f'stroke="{colour}" stroke-dasharray="4 3"><title>{_esc(decision["action"])}'
                     f' at {_hours(t)}: {_esc(decision["detail"])}</title></line>')
        if decision["action"] in ("pause", "abort"):  # where it stopped, labelled
            parts.append(f'<text x="{x(t) + 4:.1f}" y="{PAD + 14}" font-size="12" '
                         f'fill="{colour}">{_esc(decision["action"])}d at {_hours(t)}</text>')
    for key in ("old", "new", "confirmed", "bricked"):
        points = " ".join(f"{x(s.t_s):.1f},{y(getattr(s, key)):.1f}" for s in samples)
        parts.append(f'<polyline fill="none" stroke="{COLOURS[key]}" stroke-width="2" '
                     f'points="{points}"><title>{key}</title></polyline>')
    for i, key in enumerate(("old", "new", "confirmed", "bricked")):
        parts.append(f'<rect x="{PAD + i * 110}" y="14" width="12" height="12" '
                     f'fill="{COLOURS[key]}"/><text x="{PAD + i * 110 + 16}" y="24" '
                     f'font-size="12">{key}</text>')
    parts.append("</svg>")
    return "".join(parts)


def waves_svg(waves: Sequence[dict[str, object]]) -> str:
    """Per wave: grouped bars of confirmed, failed, silent and stuck devices (new in it)."""
    keys = ("confirmed", "failed", "silent", "stuck")
    if not waves:
        return "<p>no waves</p>"
    top = max([1, *(int(str(w[k])) for w in waves for k in keys)])
    group = (W - 2 * PAD) / len(waves)
    bar = group / (len(keys) + 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="waves">',
             f'<line x1="{PAD}" x2="{W - PAD}" y1="{H - PAD}" y2="{H - PAD}" stroke="#495057"/>']
    for i, wave in enumerate(waves):
        left = PAD + i * group + bar / 2
        for j, key in enumerate(keys):
            value = int(str(wave[key]))
            height = (H - 2 * PAD) * value / top
            parts.append(f'<rect x="{left + j * bar:.1f}" y="{H - PAD - height:.1f}" '
                         f'width="{bar * 0.9:.1f}" height="{height:.1f}" fill="{COLOURS[key]}">'
                         f'<title>wave {i + 1} {key}: {value}</title></rect>')
            parts.append(f'<text x="{left + j * bar + bar * 0.45:.1f}" '
                         f'y="{H - PAD - height - 3:.1f}" text-anchor="middle" '
                         f'font-size="10">{value}</text>')
        parts.append(f'<text x="{PAD + (i + 0.5) * group:.1f}" y="{H - PAD + 16}" '
                     f'text-anchor="middle" font-size="12">wave {i + 1} ({_esc(wave["amount"])},'
                     f' {_esc(wave["devices"])} devices)</text>')
    for j, key in enumerate(keys):
        parts.append(f'<rect x="{PAD + j * 110}" y="14" width="12" height="12" '
                     f'fill="{COLOURS[key]}"/><text x="{PAD + j * 110 + 16}" y="24" '
                     f'font-size="12">{key}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _decision_rows(decisions: Sequence[dict[str, object]]) -> str:
    rows = []
    skip = {"t_s", "wave", "action", "detail"}
    for d in decisions:
        numbers = ", ".join(f"{k} {v}" for k, v in d.items() if k not in skip)
        rows.append(f"<tr><td>{_hours(float(str(d['t_s'])))}</td><td>{_esc(d['wave'])}</td>"
                    f"<td>{_esc(d['action'])}</td><td>{_esc(d['detail'])}</td>"
                    f"<td>{_esc(numbers)}</td></tr>")
    return "".join(rows)


def render(result: SimResult, title: str = "otaforge fleet simulation") -> str:
    """The whole page."""
    rollout = result.rollout
    verdict = "OK" if result.ok else "FAILED"
    why = []
    if result.final["bricked"]:
        why.append(f"{result.final['bricked']} devices bricked")
    if result.spread is not None:
        why.append(f"bad release should stop in wave {result.spread.stop_wave}: blast radius "
                   f"{result.blast_radius} vs bound {result.spread.bound}"
                   + (" (spread past it)" if result.spread.spread else " (held)"))
    paused = (f"<p class='pause'>Paused: {_esc(rollout['paused_reason'])}</p>"
              if rollout.get("paused_reason") else "")
    summary = json.dumps(result.to_json()["final"])
    counters = result.counters
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#212529}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #dee2e6;padding:3px 6px;
text-align:left}}.pause{{color:#c92a2a;font-weight:bold}}.ok{{color:#2f9e44}}
.bad{{color:#c92a2a}}</style></head><body>
<h1>{_esc(title)}</h1>
<p><b class="{'ok' if result.ok else 'bad'}">{verdict}</b> {_esc('; '.join(why))}</p>
<p>{result.devices} devices, {_esc(result.versions[0])} &rarr; {_esc(result.versions[1])};
rollout <b>{_esc(rollout['state'])}</b>{' (reverted)' if rollout.get('reverted') else ''};
blast radius {result.blast_radius}; {result.bytes_served} firmware bytes served;
{_hours(result.sim_s)} simulated in {result.wall_s:.1f} s wall
({counters.check_ins} check-ins, {counters.updates} installs, {counters.power_cuts} power cuts);
final {_esc(summary)}</p>
{paused}
<h2>Versions over time</h2>
{versions_svg(result.samples, result.decisions, result.devices)}
<h2>Waves</h2>
{waves_svg(rollout['waves'])}
<h2>Gate decisions</h2>
<table><tr><th>time</th><th>wave</th><th>action</th><th>detail</th><th>numbers</th></tr>
{_decision_rows(result.decisions)}</table>
</body></html>
"""
