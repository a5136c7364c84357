"""Matplotlib without a display, for every PNG dermspark writes (ingest and evaluation reports)."""


def pyplot():
    import matplotlib

    # Executors and CI machines have no display; Agg draws to files only.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: str) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
