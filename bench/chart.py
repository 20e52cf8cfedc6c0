"""The chart of the report's ratios (matplotlib's Agg backend, no display needed)."""

from .report import format_ratio

# One colour per alternative, the same in every panel.
CHART_COLOURS = {
    "reference": "tab:blue",
    "write-up 002": "tab:orange",
    "write-up 004": "tab:green",
    "PyTorch": "tab:red",
    "NumPy @": "tab:purple",
}


def write_chart(path, ratios):
    """A bar chart of the ratios, one panel per section, drawn by Agg (no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sections = list(dict.fromkeys(section for section, *_ in ratios))
    figure = Figure(figsize=(10, 1.2 * len(sections) + 0.2 * len(ratios)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(
        len(sections),
        1,
        sharex=True,
        squeeze=False,
        height_ratios=[2 + sum(s == section for s, *_ in ratios) for section in sections],
    )[:, 0]
    for axis, section in zip(axes, sections):
        cases = list(dict.fromkeys(case for s, case, _, _ in ratios if s == section))
        alternatives = list(dict.fromkeys(a for s, _, a, _ in ratios if s == section))
        height = 0.8 / len(alternatives)
        for index, alternative in enumerate(alternatives):
            entries = [(c, r) for s, c, a, r in ratios if s == section and a == alternative]
            bars = axis.barh(
                [cases.index(case) - 0.4 + height * (index + 0.5) for case, _ in entries],
                [ratio for _, ratio in entries],
                height,
                color=CHART_COLOURS[alternative],
            )
            axis.bar_label(
                bars, [format_ratio(ratio) for _, ratio in entries], fontsize="x-small", padding=2
            )
        axis.set_xscale("log")
        axis.axvline(1, color="black", linewidth=0.8)
        axis.set_yticks(range(len(cases)), cases, fontsize="small")
        axis.invert_yaxis()
        axis.set_title(section, fontsize="medium")
    axes[-1].set_xlabel("time ÷ fastcnn's time (right of the black line: fastcnn is faster)")
    shown = [name for name in CHART_COLOURS if any(a == name for _, _, a, _ in ratios)]
    figure.legend(
        handles=[Patch(color=CHART_COLOURS[name], label=name) for name in shown],
        loc="outside upper center",
        ncols=len(shown),
    )
    figure.savefig(path, dpi=100)
