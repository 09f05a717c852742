"""Reporting: figures (``plots``, the only matplotlib code), the scripted demo behind ``main.py``
and what only the notebooks call (``notebook_helpers``).

May import: every layer below it (not ``amls2.cli``).
"""
