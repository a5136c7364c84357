"""Models chosen by name: `create_model("benbrahim_cnn", num_classes=7)`."""

from dermspark.models.registry import create_model, get_recipe, list_models, register_model

# Importing the modules registers their models.
from dermspark.models import cnn, inception, resnet  # noqa: E402,F401  isort: skip

__all__ = ["create_model", "get_recipe", "list_models", "register_model"]
