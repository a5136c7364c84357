"""dermspark: ingest, train and batch-score skin-lesion classifiers on Spark."""

__version__ = "0.1.0"


class DermsparkError(Exception):
    """A problem the user can fix (bad input, bad settings): jobs print its message, not a trace."""
