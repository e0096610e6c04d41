"""Training, evaluation and metrics for the lens finder."""
