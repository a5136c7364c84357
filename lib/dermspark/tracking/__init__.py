"""MLflow tracking, the model registry and TensorBoard logs (docs/train.md)."""
