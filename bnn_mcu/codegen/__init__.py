"""C code generation from the integer IR (Jinja templates in templates/)."""

from .generate import MODEL_FILES, generate_model_sources

__all__ = ["generate_model_sources", "MODEL_FILES"]
