"""Synthetic practices: the generator with injected pitfalls and their ground truth (``generator``), and the small
hand-made charts of the training notebook and the rule tests (``examples``)."""
