"""Scoring Functions (functions.py) and Scoring (api.py): Llama Stack 0.7's scoring APIs."""
