"""Inference: running a saved or built model on NumPy images (``model_call``), receptive field
and stride probes, whole-image/tiled/self-ensemble super-resolution (``upscaler``), where shipped
weights live (``weights``) and the ``amls2 upscale`` file job (``upscale``).

May import: the top-level modules, ``amls2.imaging`` and ``amls2.models``.
"""
