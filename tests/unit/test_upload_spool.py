"""The upload spool's sweep at start: a partial body nobody holds goes, one a live server holds stays."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pocketstack.web.uploads import UploadSpool


def test_the_sweep_removes_only_spool_files_no_live_process_holds(tmp_path: Path) -> None:
    spool = UploadSpool(tmp_path, max_bytes=1 << 20)
    dead, live = tmp_path / "upload-dead", tmp_path / "upload-live"
    dead.write_bytes(b"half a body")  # its process was killed: nothing holds it
    live.write_bytes(b"arriving")
    holder = os.open(live, os.O_RDONLY)  # another server on the same home, still receiving it
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        spool.remove_stale()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["upload-live"]
    finally:
        os.close(holder)
    spool.remove_stale()  # its request ended without moving it: it goes too
    assert list(tmp_path.iterdir()) == []
