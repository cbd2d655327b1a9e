"""A real MongoDB-wire server on this machine, without Docker: FerretDB over SQLite.

:func:`provision` builds FerretDB (a Go program that speaks MongoDB's wire
protocol and keeps its data in SQLite files) from its Go module with the
machine's Go tool, once, into ``<cache>/ferretdb/<version>/``; later runs reuse
the binary. :class:`LocalMongo` runs it on a fresh data folder and a free
localhost port, waits until it answers a ``ping``, and stops it cleanly. It is a
context manager for tests and notebooks::

    with LocalMongo() as server:
        print(server.url)            # mongodb://127.0.0.1:<port>/

With ``username`` and ``password`` the server requires SCRAM authentication
(FerretDB's experimental "new auth", the only kind its SQLite backend can
check): the user is created in ``database`` at start, anonymous clients may
``ping`` but not read or write, and a wrong password fails the handshake.
The password reaches FerretDB through its environment, never its command line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from kstream.errors import BrokerError
from kstream.paths import cache_dir
from kstream.retry import wait_until

__all__ = ["FERRETDB_VERSION", "LocalMongo", "provision", "find_go", "mongo_url"]

log = logging.getLogger(__name__)

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
GO_FOR_FERRETDB = (1, 24)  # FerretDB 1.24's go.mod
GO_SWITCHES_TOOLCHAINS = (1, 21)  # from here on GOTOOLCHAIN fetches a newer Go by itself
GO_TOOLCHAIN = "1.24.3"  # the toolchain FerretDB 1.24.2's go.mod names
_INSTALL_GO = "install Go (e.g. apt-get install golang-go)"


def _go_version(go: str) -> tuple[int, int]:
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout
    match = re.match(r"go(\d+)\.(\d+)", out.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def find_go() -> str:
    """Path of the ``go`` tool on ``PATH``, or a BrokerError saying what to install."""
    go = shutil.which("go")
    if not go:
        raise BrokerError(f"Go is needed once to build FerretDB (the local MongoDB-wire server); {_INSTALL_GO}")
    return go


def _run_go(go: str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True)


def _module_dir(go: str, module: str, cwd: Path, env: dict[str, str]) -> Path:
    """Download ``module@version`` through the configured module proxy; its folder in the module cache."""
    proc = _run_go(go, ["mod", "download", "-json", module], cwd, env)
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir"):
        reason = info.get("Error") or proc.stderr.strip() or "no output"
        raise BrokerError(f"Go could not download {module}: {reason[-300:]} (is the Go module proxy reachable?)")
    return Path(info["Dir"])


def _go_for_build(go: str, cwd: Path, env: dict[str, str]) -> str:
    """A ``go`` able to build FerretDB: the machine's, or one it fetches as a module when too old."""
    version = _go_version(go)
    if version >= GO_FOR_FERRETDB:
        return go
    if version >= GO_SWITCHES_TOOLCHAINS:
        env["GOTOOLCHAIN"] = "auto"  # go.mod names the toolchain; go fetches it through GOPROXY
        return go
    # Older Go (Debian 12 ships 1.19) cannot switch by itself; the toolchain is a Go module it can fetch.
    arch = subprocess.run([go, "env", "GOARCH"], capture_output=True, text=True).stdout.strip() or "amd64"
    root = _module_dir(go, f"golang.org/toolchain@v0.0.1-go{GO_TOOLCHAIN}.linux-{arch}", cwd, env)
    for tool in [*(root / "bin").iterdir(), *(root / "pkg" / "tool").glob("*/*")]:
        tool.chmod(tool.stat().st_mode | 0o111)  # module zips carry no exec bits
    env.pop("GOROOT", None)  # the fetched go must find its own standard library, not the old Go's
    log.info("using Go %s fetched as a module (the machine's Go %d.%d is too old)", GO_TOOLCHAIN, *version)
    return str(root / "bin" / "go")


def provision(version: str = FERRETDB_VERSION, root: Path | None = None) -> Path:
    """The FerretDB binary for ``version``, built with Go on first use (a few minutes).

    Concurrent callers (other test sessions, other processes) wait for one build;
    a finished build is marked complete, so a killed build is redone next time.
    """
    home = (root or cache_dir()) / "ferretdb" / version
    binary, done = home / "ferretdb", home / ".complete"
    if done.exists() and binary.exists():
        return binary
    go = find_go()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, across processes
        if done.exists() and binary.exists():
            return binary
        with tempfile.TemporaryDirectory(prefix="build-", dir=home) as tmp:
            build = Path(tmp)
            env = {**os.environ, "GO111MODULE": "on", "CGO_ENABLED": "0"}  # FerretDB's SQLite is pure Go
            go = _go_for_build(go, build, env)
            started = time.monotonic()
            log.info("building FerretDB %s with Go into %s (once; takes a few minutes)", version, binary)
            src = build / "src"
            shutil.copytree(_module_dir(go, f"{FERRETDB_MODULE}@{version}", build, env), src)
            for path in [src, *src.rglob("*")]:  # the module cache is read-only
                path.chmod(path.stat().st_mode | 0o200)
            (src / "build" / "version" / "version.txt").write_text(version + "\n")  # else it panics at start
            out = build / "ferretdb"
            proc = _run_go(go, ["build", "-trimpath", "-buildvcs=false", "-o", str(out), "./cmd/ferretdb"], src, env)
            if proc.returncode != 0 or not out.exists():
                (home / "build.log").write_text(proc.stdout + proc.stderr)
                raise BrokerError(f"building FerretDB {version} failed; see {home / 'build.log'}")
            os.replace(out, binary)
        done.write_text(dt.datetime.now(dt.timezone.utc).isoformat())
        log.info("built FerretDB %s in %.0fs", version, time.monotonic() - started)
    return binary


def mongo_url(address: str, username: str = "", password: str = "", auth_source: str = "") -> str:
    """A ``mongodb://`` URL; user name and password are percent-encoded.

    >>> mongo_url("127.0.0.1:27017")
    'mongodb://127.0.0.1:27017/'
    >>> mongo_url("127.0.0.1:27017", "kstream", "p@ss:w/rd", "kstream")
    'mongodb://kstream:p%40ss%3Aw%2Frd@127.0.0.1:27017/?authSource=kstream'
    """
    if not username:
        return f"mongodb://{address}/"
    user, secret = urllib.parse.quote(username, safe=""), urllib.parse.quote(password, safe="")
    query = f"?authSource={urllib.parse.quote(auth_source, safe='')}" if auth_source else ""
    return f"mongodb://{user}:{secret}@{address}/{query}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalMongo:
    """FerretDB (SQLite backend) on localhost: a real MongoDB-wire server for tests and notebooks.

    ``data_dir`` None means a fresh temporary folder, removed on :meth:`stop`;
    ``port`` 0 means a free port picked at start. With ``username`` and
    ``password`` clients must authenticate (against ``database``).
    Nothing happens until :meth:`start`.

    >>> LocalMongo(username="kstream", password="hunter2")
    LocalMongo(url='mongodb://kstream:***@127.0.0.1:0/?authSource=kstream', running=False)
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int = 0,
        username: str = "",
        password: str = "",
        database: str = "kstream",
        version: str = FERRETDB_VERSION,
        log_level: str = "warn",
    ) -> None:
        if bool(username) != bool(password):
            raise BrokerError("give LocalMongo both a username and a password, or neither")
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port
        self.username = username
        self._password = password
        self.database = database
        self.version = version
        self.log_level = log_level
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL a client connects with (holding the password when the server requires one)."""
        return mongo_url(self.address, self.username, self._password, self.database if self.username else "")

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None, "the server has not been started"
        return self.data_dir / "ferretdb.log"

    def __repr__(self) -> str:
        shown = mongo_url(self.address, self.username, "***", self.database) if self.username else self.url
        return f"LocalMongo(url={urllib.parse.unquote(shown)!r}, running={self.process is not None})"

    def __enter__(self) -> LocalMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _command(self, binary: Path) -> list[str]:
        assert self.data_dir is not None
        sqlite_dir = urllib.parse.quote(str(self.data_dir / "data"), safe="/")
        cmd = [
            str(binary),
            "--handler=sqlite",
            # WAL with synchronous=full: every acknowledged write is on disk
            f"--sqlite-url=file:{sqlite_dir}/?_pragma=synchronous(full)",
            f"--listen-addr={self.address}",
            "--debug-addr=-",  # no metrics listener (its fixed default port clashes between servers)
            f"--state-dir={self.data_dir}",
            "--telemetry=disable",
            f"--log-level={self.log_level}",
        ]
        if self.username:
            cmd += ["--test-enable-new-auth", f"--setup-database={self.database}", f"--setup-username={self.username}"]
        return cmd

    def start(self, timeout_s: float = 60) -> LocalMongo:
        """Provision, launch and wait until the server answers a ping (with the credentials, if any)."""
        if self.process is not None:
            return self
        binary = provision(self.version)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="kstream-ferretdb-"))
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        fixed_port = bool(self.port)
        for attempt in range(3):  # a free port may be taken before FerretDB binds it
            self.port = self.port if fixed_port else _free_port()
            self._launch(binary)
            try:
                self._wait_ready(timeout_s)
                return self
            except BrokerError:
                in_use = "address already in use" in self._log_tail()
                self._stop_process()
                if fixed_port or not in_use or attempt == 2:
                    self.stop()
                    raise
            except BaseException:  # Ctrl-C while waiting must not leave a server behind
                self.stop()
                raise
        return self

    def _launch(self, binary: Path) -> None:
        env = dict(os.environ)
        if self.username:
            env["FERRETDB_SETUP_PASSWORD"] = self._password  # not on the command line: ps shows that
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self._command(binary),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C in a notebook must not kill it mid-write
            )
        log.info("starting FerretDB %s at %s (log: %s)", self.version, self.address, self.log_path)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def _wait_ready(self, timeout_s: float) -> None:
        import pymongo
        import pymongo.errors

        client: pymongo.MongoClient = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=1000,
                                                          connectTimeoutMS=1000)

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BrokerError(
                    f"FerretDB exited with code {self.process.returncode} while starting; see {self.log_path}"
                )
            try:
                client[self.database].command("ping")
            except pymongo.errors.PyMongoError:
                return False
            return True

        try:
            if not wait_until(ready, timeout_s, interval=0.2):
                raise BrokerError(
                    f"FerretDB at {self.address} did not answer within {timeout_s:.0f}s; see {self.log_path}"
                )
        finally:
            client.close()

    def _stop_process(self, timeout_s: float = 30) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("FerretDB (pid %d) did not stop within %.0fs; killing it", proc.pid, timeout_s)
            proc.kill()
            proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``); remove a temporary data folder."""
        self._stop_process(timeout_s)
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
