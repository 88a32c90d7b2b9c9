"""llmos: an operating system for language models.

Fine-tune, compress, track, register, serve and schedule language models with one tool.
Importing this package is cheap: torch, transformers and mlflow load only when used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
