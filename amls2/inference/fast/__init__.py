"""The CPU speed machinery: the same function as a model in faster layers (``reparam``, built
from ``fused_layers``) and the oneDNN facts that decide it (``onednn``). Used on CPU only, behind
one switch (``AMLS2_FAST_INFERENCE``, see ``amls2.inference.model_call``).

May import: the top-level modules and ``amls2.models``.
"""
