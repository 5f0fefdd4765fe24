"""Process-wide thread settings."""

from __future__ import annotations

import os

import pytest


def test_openblas_threads_do_not_spin_between_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spinning BLAS threads slowed the next query's embedding on llama.cpp's threads (31 ms -> 15 ms per query)
    from pocketstack.providers.threads import quiet_blas

    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    quiet_blas()
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "4"
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "10")
    quiet_blas()
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "10"  # the user's choice wins
