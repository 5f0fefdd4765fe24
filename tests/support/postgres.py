"""A real PostgreSQL with pgvector for the pgvector tests, started on a free loopback port.

Where to find one, in order: the machine's PostgreSQL when its pgvector extension is installed;
Debian's `postgresql-<major>-pgvector` installed now when running as root (the Debian snapshot
this machine uses may not carry it); else the PostgreSQL + pgvector build that the
`pgserver` wheel (a dev dependency) ships. The cluster lives in a temporary folder and is
stopped at the end of the session. PostgreSQL refuses to run as root, so as root it runs as the
`postgres` (or `nobody`) user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    bindir: Path


def _has_vector(bindir: Path) -> bool:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        share = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True).stdout.strip()
        if share:
            return (Path(share) / "extension" / "vector.control").exists()
    # Debian's server binaries live in /usr/lib/postgresql/<major>/bin, their files in /usr/share/postgresql/<major>
    return (Path("/usr/share/postgresql") / bindir.parent.name / "extension" / "vector.control").exists()


def _system_bindirs() -> list[Path]:
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _try_debian_package(bindir: Path) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    package = f"postgresql-{bindir.parent.name}-pgvector"
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", package],
            capture_output=True,
            timeout=180,
            env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
        )


def find_bindir() -> Path | None:
    for bindir in _system_bindirs():
        if (bindir / "postgres").exists() and _has_vector(bindir):
            return bindir
    for bindir in _system_bindirs():
        if (bindir / "postgres").exists():
            _try_debian_package(bindir)
            if _has_vector(bindir):
                return bindir
    spec = importlib.util.find_spec("pgserver")  # found, not imported: its import has side effects
    if spec is not None and spec.submodule_search_locations:
        bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bindir / "postgres").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _runner() -> tuple[list[str], pwd.struct_passwd | None]:
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], account
    raise RuntimeError("running as root without a postgres or nobody user to run PostgreSQL as")


@contextlib.contextmanager
def running_postgres(folder: Path) -> Iterator[Postgres]:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL with pgvector: install postgresql-15-pgvector or pgserver")
    prefix, account = _runner()
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(parents=True)
    if account is not None:
        for path in (folder, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
        # the user must be able to reach the binaries (pgserver's live under this venv) and the folder
        os.chmod(folder, 0o755)
    port = _free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    log = folder / "postgres.log"
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield Postgres("127.0.0.1", port, "postgres", bindir)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
