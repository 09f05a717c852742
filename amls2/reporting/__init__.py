"""Reporting: figures (the figure modules ``plots``, ``comparison``, ``diagrams``, ``hero`` and
``figure_helpers``, the only matplotlib code), the scripted demo behind ``main.py`` (``demo``,
``demo_config``, ``demo_training``) and what only the notebooks call (``notebook_helpers``).

May import: every layer below it (not ``amls2.cli``).
"""
