"""Helpers the tests and the benchmarks share; fixtures live in the conftest files, never here.

config: run configs and model files (edge_with, write_gguf, CHAT_MODEL, REPO); errors: the spec's
error shape; scripted: the scripted chat provider; documents: the sample files and a store made of
them; process: `pocketstack run` as a real process; postgres: a PostgreSQL with pgvector;
safety_cases: the labelled cases of the safety providers. Test modules import only from here
(and get fixtures from conftest), never from one another.
"""
