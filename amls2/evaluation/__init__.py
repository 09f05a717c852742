"""Evaluation: the one scoring loop over models and data sets (``scoring``), the robustness sweep,
tables of records, and shipping a finished run with its evaluated sidecar.

May import: the top-level modules, ``amls2.imaging``, ``amls2.data``, ``amls2.models`` and
``amls2.inference``.
"""
