"""A corpus of BNNs written the way public BNN code writes them (issue 15).

One module per source style; each holds MODELS (convertible, checked bit for bit against
PyTorch eval on all 10,000 Fashion-MNIST test images) and refusals.py holds REFUSALS (models
that are not exact BNNs, to be refused in one line). tests/test_outside_models.py runs them.
"""

from . import binarynet, bireal_style, larq_style, tutorial_style, xnor_style
from .refusals import REFUSALS

MODELS = (binarynet.MODELS + larq_style.MODELS + xnor_style.MODELS + bireal_style.MODELS
          + tutorial_style.MODELS)
BY_NAME = {m.name: m for m in MODELS}

__all__ = ["MODELS", "BY_NAME", "REFUSALS"]
