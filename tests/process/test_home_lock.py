"""One server per home (runtime/storage/home_lock.py): a second `pocketstack run` on a home a server
is using is refused with a clear message before it starts anything (it would resume the first's
in-progress work), on another port too; once the first ends, however it ends, the home is free."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.process import environment, free_port, pocketstack, start

pytestmark = [pytest.mark.process, pytest.mark.slow]


def _run(home: Path, port: int) -> subprocess.CompletedProcess[str]:
    command = pocketstack("run", "--port", str(port))
    return subprocess.run(command, env=environment(home), capture_output=True, text=True, timeout=60, check=False)


def test_a_second_server_on_one_home_is_refused_until_the_first_ends(home: Path) -> None:
    first = start(home)
    try:
        second = _run(home, free_port())
        assert second.returncode == 1, second.stderr
        assert f"another PocketStack server (pid {first.process.pid}) is serving from {home}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.stop(signal.SIGKILL)  # a killed server leaves no stale lock behind

    again = start(home)  # the home is free again
    assert again.stop() == 0, again.output()
