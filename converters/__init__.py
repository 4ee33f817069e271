"""Converters: one module per target, calibration faces, validation after export
(installed as ``fiqa_edge.converters``). The target table is in ``targets.py``.
"""
