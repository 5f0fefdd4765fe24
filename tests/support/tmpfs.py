"""`pocketstack run` with a small tmpfs as its home, to fill the disk under it.

Mounting takes privileges: the server runs in a user and mount namespace of its own (`unshare
-rm`, which an unprivileged user can enter where the kernel allows user namespaces), so the
mount is private to it and goes away with it. Only the processes in that namespace see the
tmpfs, so the databases' integrity is checked there too, after the server stops
(`python -m tests.support.tmpfs HOME` prints `PRAGMA integrity_check` of each).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.support.process import environment, free_port, pocketstack

START_TIMEOUT_S = 60.0
# Mount the tmpfs on the home, put the embedding model in (a link: the model is not the disk's to fill) and two pieces
# of 64 KiB of something else an operator can delete to make room (free_room), run the server in the background (its
# pid for the test), wait for it, then check the databases while the tmpfs is still there: with the uploaded files'
# bytes removed first, as SQLite needs room to open a database whose write-ahead log the server could not fold back.
_SCRIPT = """set -e
home=$1 size=$2 model=$3 pidfile=$4 report=$5; shift 5
mount -t tmpfs -o size="$size" tmpfs "$home"
mkdir -p "$home/models" && ln -s "$model" "$home/models/"
head -c 65536 /dev/zero > "$home/operator-reserve-1"
head -c 65536 /dev/zero > "$home/operator-reserve-2"
"$@" & echo $! > "$pidfile"
set +e; wait $!; set -e
find "$home/files" -type f -delete
"$PYTHON" -m tests.support.tmpfs "$home" > "$report"
"""


def unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here (None when it can)."""
    if shutil.which("unshare") is None:
        return "no `unshare` on this machine"
    with tempfile.TemporaryDirectory() as folder:
        probe = ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder]
        result = subprocess.run(probe, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace (`unshare -rm mount -t tmpfs`): {result.stderr.strip()}"
    return None


class TmpfsServer:
    def __init__(self, home: Path, size: str, model: Path, args: Sequence[str] = ()) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home.resolve()
        self.port = free_port()
        self.log = home.parent / f"server-{self.port}.log"
        self.pidfile = home.parent / "server.pid"
        self.report = home.parent / "integrity.json"
        command = ["unshare", "-rm", "sh", "-c", _SCRIPT, "sh", str(home), size, str(model), str(self.pidfile),
                   str(self.report), *pocketstack("run", *args, "--port", str(self.port))]  # fmt: skip
        with self.log.open("w") as sink:
            env = environment(home, PYTHON=sys.executable)
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, text=True)
        self._wait_healthy()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/v1/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {START_TIMEOUT_S} s:\n{self.output()}")

    def free_room(self) -> None:
        """Delete 64 KiB of the operator's, as an operator would: from outside the API (which cannot delete on a
        full disk: SQLite needs room to write even a delete). The server's mount namespace is reached through
        /proc/PID/root."""
        home = Path(f"/proc/{self.pidfile.read_text().strip()}/root") / self.home.relative_to("/")
        next(iter(sorted(home.glob("operator-reserve-*")))).unlink()

    def stop(self) -> dict[str, str]:
        """Stop the server (SIGTERM); the integrity of each database in its home."""
        if self.process.poll() is None and self.pidfile.exists():
            subprocess.run(["kill", "-TERM", self.pidfile.read_text().strip()], check=False)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        if not self.report.exists():
            raise RuntimeError(f"no integrity report:\n{self.output()}")
        return dict(json.loads(self.report.read_text()))


def _integrity(path: Path) -> str:
    import apsw  # as the vector provider opens its database: with the sqlite-vec extension its tables need
    import sqlite_vec

    connection = apsw.Connection(str(path))
    try:
        connection.enable_load_extension(True)
        sqlite_vec.load(connection)
        return ";".join(str(row[0]) for row in connection.execute("PRAGMA integrity_check"))
    except apsw.Error as exc:
        return f"error: {exc}"
    finally:
        connection.close()


if __name__ == "__main__":
    home = Path(sys.argv[1])
    print(json.dumps({str(path.relative_to(home)): _integrity(path) for path in sorted(home.rglob("*.db"))}))
