"""llmos: an operating system for language models.

Fine-tune, compress, track, register, serve and schedule language models with one tool.
Importing this package is cheap: torch, transformers and mlflow load only when used.
"""

from llmos._noise import drop_known_noise

__version__ = "0.1.0"

drop_known_noise()

__all__ = ["__version__"]
