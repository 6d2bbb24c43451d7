"""Text and Markdown views of trial results (front-end helpers; nothing here measures)."""

from __future__ import annotations

from advisor.core.tables import Column, table, wrap_text
from advisor.core.units import format_bytes, format_count, format_rate, format_seconds
from advisor.recommend import NOISY_SPREAD, is_noisy
from profilers.records import Provenance, Timing, TrialResult

__all__ = ["FIGURE_COLUMNS", "backend_notes", "simulation_note", "trial_rows", "trial_text"]


def trial_rows(r: TrialResult) -> list[tuple[str, str, str]]:
    """(figure, value, source) rows describing one trial."""
    rows: list[tuple[str, str, str]] = [
        ("model", r.model, ""),
        ("plan", r.plan, ""),
        ("device", r.device, ""),
        ("micro-batch × seq", f"{r.batch_size} × {r.seq_len}", ""),
        ("status", r.status.value + (f" — {r.reason}" if r.reason else ""), ""),
    ]
    if r.accumulation_steps > 1:
        rows.append(("accumulation steps", str(r.accumulation_steps), ""))
    if r.params:
        p = r.params
        src = p.provenance.value
        rows += [
            ("parameters", f"{format_count(p.total)} ({format_bytes(p.parameter_bytes)})", src),
            ("trainable", f"{format_count(p.trainable)} ({p.trainable_percent:.3g}%)", src),
        ]
    sim = r.simulation
    bound = sim.upper_bound if sim is not None else None
    if r.tensor_peak:
        tp = r.tensor_peak
        b = tp.breakdown
        src = tp.provenance.value + (", upper bound" if bound else "")
        at_most = "≤ " if bound else ""
        rows += [
            ("peak tensor memory", f"{at_most}{format_bytes(tp.peak_bytes, 2)} (in {tp.peak_phase})", src),
        ]
        if r.simulation is not None and r.simulation.moe_routing:  # the figure's assumption
            rows.append(("peak assumes (MoE)", r.simulation.moe_routing, "assumption"))
        rows += [
            ("  parameters", format_bytes(b.parameter_bytes + b.buffer_bytes, 2), src),
            ("  gradients", format_bytes(b.gradient_bytes, 2), src),
            ("  optimizer state", format_bytes(b.optimizer_state_bytes, 2), src),
            ("  input batch", format_bytes(b.input_bytes, 2), src),
            ("  activations + temporaries", format_bytes(b.activation_bytes, 2), src),
        ]
        if b.communication_buffer_bytes or r.distributed is not None:
            rows.append(("  communication buffers", format_bytes(b.communication_buffer_bytes, 2), src))
        rows.append(("resident between steps", format_bytes(tp.resident_before_step_bytes, 2), src))
    rows += _rank_rows(r)
    if sim is not None and sim.moments is not None and sim.moments.loading_bytes is not None:
        m = sim.moments
        rows.append(("peak while loading", f"{format_bytes(m.loading_bytes, 2)} ({m.loading_path})", Provenance.SIMULATED.value))
    if sim is not None and sim.moments is not None and sim.moments.saving_bytes is not None:
        m = sim.moments
        rows.append(("peak while saving", f"{format_bytes(m.saving_bytes, 2)} ({m.saving_path})", Provenance.SIMULATED.value))
    if sim is not None and sim.moments is not None and (sim.moments.loading_bytes is not None or sim.moments.deciding != "step"):
        m = sim.moments
        rows.append(("deciding moment", f"{m.deciding} ({format_bytes(m.peak_bytes, 2)})", Provenance.SIMULATED.value))
    if sim is not None and sim.host_peak_bytes:
        rows.append(("host memory (offloaded, pinned)", format_bytes(sim.host_peak_bytes, 2), Provenance.SIMULATED.value))
    if sim is not None and sim.autocast_policy:
        rows.append(("autocast", sim.autocast_policy, Provenance.SIMULATED.value))
    if bound:
        rows.append(("note", bound, ""))
    repeats = r.simulation.repeats if r.simulation is not None else None
    if repeats is not None:  # "simulated (extrapolated from 1..3 of 32 blocks)" → its parenthesis
        rows.append(("layers", repeats.detail.removeprefix("simulated (").removesuffix(")"), "simulated"))
    if r.cuda:
        c = r.cuda
        src = c.provenance.value
        rows += [
            ("CUDA max allocated", format_bytes(c.max_allocated_bytes, 2), src),
            ("CUDA max reserved", format_bytes(c.max_reserved_bytes, 2), src),
            ("CUDA max active", format_bytes(c.max_active_bytes, 2), src),
        ]
    if r.nvml:
        n = r.nvml
        rows.append(
            ("NVML device used (peak)", format_bytes(n.peak_device_used_bytes, 2), n.provenance.value)
        )
        if n.peak_process_used_bytes is not None:
            rows.append(
                ("NVML this process (peak)", format_bytes(n.peak_process_used_bytes, 2), n.provenance.value)
            )
    if r.timing:
        t = r.timing
        src = t.provenance.value
        rows += [
            (
                "step time (median)",
                f"{format_seconds(t.median_step_time_s)} (min {format_seconds(t.min_step_time_s)}, "
                f"max {format_seconds(t.max_step_time_s)}, {t.steps} steps)",
                src,
            ),
            ("step-time spread", _spread_text(t), src),
            (
                "throughput",
                f"{format_rate(t.tokens_per_s, 'tok/s')}, {format_rate(t.samples_per_s, 'samples/s')}",
                src,
            ),
        ]
    if r.host:
        rows.append(
            ("host RSS peak (context only)", format_bytes(r.host.rss_peak_bytes), r.host.provenance.value)
        )
    return rows


def _rank_rows(r: TrialResult) -> list[tuple[str, str, str]]:
    """Rows of one rank of N: the strategy, the ranks' peaks and their spread, the bytes sent."""
    d = r.distributed
    if d is None:
        return []
    src = r.tensor_peak.provenance.value if r.tensor_peak is not None else ""
    nodes = f" on {d.nodes} nodes" if d.nodes > 1 else ""
    rows = [("strategy", f"{d.strategy}, rank {d.rank} of {d.world_size}{nodes} ({d.backend})", "")]
    if d.rank_peak_bytes:
        peaks = ", ".join(format_bytes(b, 2) for b in d.rank_peak_bytes)
        runs = f", max over {d.runs} runs" if d.runs > 1 else ""
        spread = f"; spread {100 * d.spread:.1f}%" if d.spread is not None else ""
        rows.append(("peak of each rank", f"{peaks}{runs}{spread}", src))
    if d.comm_bytes_per_step is not None:
        rows.append(("sent per step (ring collectives)", format_bytes(d.comm_bytes_per_step, 2), "estimated"))
    return rows


# (figure, value, source) tables: on a narrow terminal the value wraps; nothing is left out
FIGURE_COLUMNS = (Column("figure"), Column("value", wrap=True, min_width=24), Column("source"))


def _spread_text(t: Timing) -> str:
    """``"8% of the median"``, ``"62% of the median: noisy (over 25%)"``, or why it is unknown."""
    if t.spread is None:
        return "– (one timed step)" if t.steps < 2 else "–"
    text = f"{t.spread:.0%} of the median"
    return text + (f": noisy (over {NOISY_SPREAD:.0%})" if is_noisy(t) else "")


def simulation_note(r: TrialResult) -> str:
    """What a simulated result's figures need said beside them: an upper bound, host memory."""
    sim = r.simulation
    if sim is None:
        return ""
    parts = [sim.upper_bound] if sim.upper_bound else []
    if sim.host_peak_bytes:
        parts.append(f"+ {format_bytes(sim.host_peak_bytes, 2)} pinned host memory (offload)")
    return "; ".join(parts)


def backend_notes(r: TrialResult) -> list[str]:
    """One line per measurement backend that could not be used, with the reason."""
    return [f"{b.name}: unavailable — {b.reason}" for b in r.backends if not b.available]


def trial_text(r: TrialResult, markdown: bool = False, width: int | None = None) -> str:
    """One trial as a readable table (human units, provenance per figure), then backend notes;
    within ``width`` characters a line when given (plain text only)."""
    text = table(FIGURE_COLUMNS, trial_rows(r), markdown=markdown, width=width)
    notes = backend_notes(r)
    if notes:
        bullet = "- " if markdown else "  "
        text += "\n\nbackends not used:\n" + "\n".join(bullet + n for n in notes)
    return text if markdown else wrap_text(text, width)
