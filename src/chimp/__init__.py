"""CHIMP: Continuous Hypothesis and Information Mending Pipeline."""

__version__ = "0.1.0"
