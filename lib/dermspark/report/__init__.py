"""Everything a person reads after a run, for ingest, training and scoring alike:

- metrics.py: classification metrics with lesion-bootstrap intervals (scikit-learn's arithmetic);
- evaluation.py: report.md and its plots from those metrics (training and scoring);
- distributions.py: the class and metadata counts ingest reports, with their plots;
- plots.py: matplotlib without a display, each PNG written straight to any store.
"""
