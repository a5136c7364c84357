"""The monitor job: the predictions table watched over time, per model version and period."""
