"""Operating-system helpers: binaries, the unprivileged server user, processes and ports."""
import functools
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import HOST, ClusterError, Log, cli

DEBIAN_PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")


@dataclass(frozen=True)
class OsUser:
    """The account servers run as when we are root (PostgreSQL and pgbouncer refuse root)."""
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def pg_bindir() -> Path:
    """Find the PostgreSQL 15 server binaries: $PG_BINDIR, the Debian path, then pg_config."""
    if os.environ.get("PG_BINDIR"):
        candidates = [Path(os.environ["PG_BINDIR"])]
    else:
        candidates = [DEBIAN_PG_BINDIR, *_pg_config_bindir()]
    for bindir in candidates:
        if all(os.access(bindir / b, os.X_OK) for b in SERVER_BINARIES):
            return bindir
    looked = ", ".join(map(str, candidates))
    raise ClusterError(
        f"PostgreSQL 15 server binaries not found (looked in {looked}): install them with "
        "`apt-get install postgresql` (or run `make setup`), or set PG_BINDIR")


def _pg_config_bindir() -> list[Path]:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return []
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
    return [Path(out.stdout.strip())] if out.returncode == 0 else []


def pgbouncer_exe() -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    exe = shutil.which("pgbouncer", path=path)
    if not exe:
        raise ClusterError(
            f"pgbouncer not found (looked in PATH and {', '.join(SBIN_DIRS)}): install it with "
            "`apt-get install pgbouncer` (or run `make setup`)")
    return exe


@functools.cache
def os_user() -> OsUser | None:
    """The user to run servers as: None (ourselves) unless root, then $CLUSTER_OS_USER or postgres."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("CLUSTER_OS_USER")
    if name:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise ClusterError(f"OS user {name!r} from CLUSTER_OS_USER does not exist: "
                               f"create it with `useradd --system {name}` or unset CLUSTER_OS_USER") from None
    else:
        pw = _existing_user("postgres") or _existing_user("pgcluster") or _create_user("pgcluster")
    return OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid,
                  tuple(os.getgrouplist(pw.pw_name, pw.pw_gid)), pw.pw_dir)


def _existing_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _create_user(name: str) -> pwd.struct_passwd:
    cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise ClusterError(f"could not create OS user {name!r} ({out.stderr.strip()}): "
                           "create one yourself and set CLUSTER_OS_USER")
    return pwd.getpwnam(name)


def run(cmd: list[str | Path], *, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a server program as the server user, without PG* variables that could redirect it."""
    user = os_user()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if user:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        kwargs.update(user=user.uid, group=user.gid, extra_groups=list(user.groups))
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True, **kwargs)


def give_to_server_user(path: Path) -> None:
    """chown a file or directory we created to the server user (no-op when not root)."""
    user = os_user()
    if user:
        os.chown(path, user.uid, user.gid)


def write_private(path: Path, text: str) -> None:
    """Write a 0600 file readable by the server user."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    give_to_server_user(path)


def make_traversable(path: Path, log: Log) -> None:
    """Add o+x (search only) to ancestors the server user cannot enter, e.g. a 0700 home or /tmp dir."""
    user = os_user()
    if not user:
        return
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in user.groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            log(f"note: added o+x (search only) to {directory} so that OS user {user.name!r} can reach {path}")


def proc_cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None  # gone, or a zombie nobody reaped yet: not running either way


def running(pid: int) -> bool:
    return proc_cwd(pid) is not None


def proc_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postgres_pids_in(directory: Path) -> list[int]:
    """postgres processes whose working directory is `directory` (a data dir's backends)."""
    target = str(directory.resolve())
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and proc_cwd(int(p)) == target and _proc_exe(int(p)).endswith("/postgres")]


def _proc_exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids: list[int], is_alive: Callable[[int], bool], timeout: float) -> list[int]:
    """Wait until `is_alive(pid)` is false for every pid; returns the survivors."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if is_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if is_alive(p)]
    return alive


def port_taken(port: int) -> bool:
    """True if something listens on HOST:port; SO_REUSEADDR so TIME_WAIT leftovers don't count."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def ensure_port_free(port: int, node_name: str, cluster: str) -> None:
    if port_taken(port):
        raise ClusterError(
            f"port {port} for {node_name} is taken by another process: stop that process, "
            f"or {cli(cluster, 'destroy')} and `up` again to pick new ports")

