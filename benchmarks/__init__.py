"""Benchmarks: model cost, baselines, EDC and speed measurements
(installed as ``fiqa_edge.benchmarks``).
"""
