"""Training: datasets, losses, the resumable training loop, pseudo-labelling and the
self-training + distillation recipe (installed as ``fiqa_edge.train``; needs torch).
"""
