"""Valkey with no single point of failure, started by the project on loopback: one
primary, replicas (``replicaof``) and Sentinels (``valkey-server --sentinel``), every
process a :class:`~wslab.chat.testing.valkey.LocalValkey`, started and stopped by PID
and dying with the process that started it. For tests, notebooks and benchmarks.

Every data server keeps an AOF with ``appendfsync always`` and refuses writes while it
is a primary with no replica that answered in the last ``max_lag`` seconds
(``min-replicas-to-write 1``), so a primary cut off from its replicas stops taking
writes within about ``max_lag`` + 1 s. The chat's log acknowledges a line only after
``WAITAOF`` says it is in the AOF of the primary and of its replicas
(:mod:`wslab.chat.stores.redis`); this module only runs the servers.

Sentinels watch the primary (``down-after-milliseconds``, 1 s by default) and, when a
``quorum`` of them (2 of 3) cannot reach it, promote the replica with the most data;
measured on a 2-core machine, a SIGKILLed primary is replaced in about 2.3 s.

Faults for tests: :meth:`ValkeyHA.kill` (SIGKILL), :meth:`ValkeyHA.pause` and
:meth:`ValkeyHA.resume` (SIGSTOP, SIGCONT: a primary that comes back after it was
replaced), :meth:`ValkeyHA.restart` (a data server back as a replica of whoever is
primary now), :meth:`ValkeyHA.wait_failover`. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from .proxy import TcpProxy
from .valkey import LocalValkey, ValkeyError, find_binary, free_port

__all__ = ["LocalSentinel", "ValkeyHA"]

HOST = "127.0.0.1"
SETTLE = 30.0  # seconds: the bound on every wait for the topology to settle


def _port(server: LocalValkey) -> int:
    """``server``'s port, chosen at its first start.

    Raises:
        ValkeyError: it was never started.
    """
    if server.port is None:
        raise ValkeyError("O servidor Valkey ainda não foi iniciado.")
    return server.port


def _call(server: LocalValkey, *command: object, timeout: float = 1.0) -> Any:
    """One command to a local server, or None when it does not answer (stopped,
    paused, loading)."""
    import redis

    client = redis.Redis(
        host=server.host,
        port=_port(server),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )
    try:
        # redis-py leaves execute_command unannotated (a reply of any shape).
        return client.execute_command(*command)  # type: ignore[no-untyped-call]
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _fields(reply: Any) -> dict[str, str]:
    """A Sentinel reply of alternating names and values, as a dict."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True)) if reply else {}


class LocalSentinel(LocalValkey):
    """One Sentinel (``valkey-server <config> --sentinel``) watching ``service``.

    Its configuration file lives in ``data_dir``; Sentinel rewrites it as it learns the
    replicas, the other Sentinels and each failover, so a restart keeps what it knew.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        service: str,
        primary: tuple[str, int],
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        binary: str | None = None,
    ) -> None:
        super().__init__(data_dir, binary=binary)
        self.service = service
        self._first = (primary, quorum, down_after_ms, failover_timeout_ms)
        self._written: int | None = None  # the port the configuration file was written for

    @property
    def config(self) -> Path:
        return self.data_dir / "sentinel.conf"

    def command(self) -> list[str]:
        if self._written != self.port:  # the first start; later ones keep Sentinel's own
            self._written = self.port
            (host, port), quorum, down_after, failover_timeout = self._first
            name = self.service
            self.config.write_text(
                f"port {self.port}\nbind {self.host}\ndir {self.data_dir}\n"
                f"logfile {self.log_path}\n"
                f"sentinel monitor {name} {host} {port} {quorum}\n"
                f"sentinel down-after-milliseconds {name} {down_after}\n"
                f"sentinel failover-timeout {name} {failover_timeout}\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
        return [self.binary, str(self.config), "--sentinel"]

    def view(self) -> dict[str, str]:
        """This Sentinel's view of the service (SENTINEL MASTER), or {} if it does not
        answer."""
        return _fields(_call(self, "SENTINEL", "MASTER", self.service))


class ValkeyHA:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels on loopback.

    Args:
        data_dir: one folder per process is made inside it.
        replicas: data servers besides the primary (2: one may die and writes go on).
        sentinels, quorum: Sentinels, and how many must agree that the primary is down.
        service: the name the Sentinels know the primary by (``--redis-service``).
        down_after_ms: how long the primary must be silent for a Sentinel to call it
            down.
        failover_timeout_ms: Sentinel's failover timeout (also: the same primary is not
            failed over twice within twice this time).
        max_lag: ``min-replicas-max-lag``, seconds.
        proxied: every data server is reached through its own
            :class:`~wslab.chat.testing.proxy.TcpProxy` (:attr:`proxies`), whose address
            it announces, so the Sentinels name proxies and every client (nodes,
            Sentinels, replicas after a failover) goes through them: a test can cut
            one node from the primary (:meth:`TcpProxy.cut`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        replicas: int = 2,
        sentinels: int = 3,
        quorum: int = 2,
        service: str = "wslab",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        max_lag: int = 2,
        proxied: bool = False,
        binary: str | None = None,
    ) -> None:
        if replicas < 1 or sentinels < quorum or quorum < 1:
            raise ValueError(
                f"need replicas >= 1 and 1 <= quorum <= sentinels, not {replicas}, "
                f"{quorum}, {sentinels}"
            )
        self.data_dir = Path(data_dir).resolve()
        self.service = service
        self.max_lag = max_lag
        self._settings = (quorum, down_after_ms, failover_timeout_ms)
        self.binary = binary or find_binary()
        self.servers = [
            LocalValkey(self.data_dir / f"data{i}", binary=self.binary) for i in range(replicas + 1)
        ]
        self.sentinels: list[LocalSentinel] = []
        self.proxies: dict[int, TcpProxy] = {}  # data server's port -> its proxy
        self._proxied = proxied
        self._count = sentinels
        self._paused: set[int] = set()

    # -- facts -------------------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The Sentinels' (host, port), for redis-py's ``Sentinel``."""
        return [(s.host, _port(s)) for s in self.sentinels]

    @property
    def sentinel_flags(self) -> list[str]:
        """``serve`` arguments that point a node at this service."""
        flags = []
        for host, port in self.addresses:
            flags += ["--redis-sentinel", f"{host}:{port}"]
        return [*flags, "--redis-service", self.service]

    def primary(self) -> LocalValkey | None:
        """The data server that a majority of the Sentinels name as primary and that
        says it is one; None while they disagree or it does not answer."""
        named: dict[int, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.running() or sentinel.pid in self._paused:
                continue
            reply = _call(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            if reply:
                port = int(reply[1])
                named[port] = named.get(port, 0) + 1
        for port, votes in named.items():
            if votes * 2 > len(self.sentinels):
                server = self._by_port(port)
                if server is not None and self.role(server) == "master":
                    return server
        return None

    def role(self, server: LocalValkey) -> str | None:
        """``master``, ``slave`` or None (stopped, paused, not answering)."""
        if not server.running() or server.pid in self._paused:
            return None
        reply = _call(server, "ROLE")
        return reply[0] if reply else None

    def replicas_of(self, primary: LocalValkey) -> int:
        """How many replicas ``primary`` counts as online and recent (its
        ``min_slaves_good_slaves``), 0 if it does not answer."""
        info = _call(primary, "INFO", "replication")
        return int(info.get("min_slaves_good_slaves", 0)) if isinstance(info, dict) else 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = SETTLE) -> ValkeyHA:
        """Start the data servers (the first as primary), wait until every replica is
        linked, then start the Sentinels and wait until each knows the replicas and
        the other Sentinels.

        Raises:
            ValkeyError: a process did not start, or the topology did not settle in
                ``timeout`` s (every process started is stopped again).
        """
        try:
            primary, *replicas = self.servers
            for server in self.servers:
                server.port = server.port or free_port(server.host)
                if self._proxied:
                    self.proxies[server.port] = TcpProxy((server.host, server.port))
            primary.options = self._data_options(None, primary)
            primary.start()
            for server in replicas:
                server.options = self._data_options(primary, server)
                server.start()
            quorum, down_after, failover_timeout = self._settings
            self.sentinels = [
                LocalSentinel(
                    self.data_dir / f"sentinel{i}",
                    service=self.service,
                    primary=self.address(primary),
                    quorum=quorum,
                    down_after_ms=down_after,
                    failover_timeout_ms=failover_timeout,
                    binary=self.binary,
                )
                for i in range(self._count)
            ]
            self.wait_settled(timeout, sentinels_known=False)
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_settled(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process (SIGCONT first for a paused one, then SIGTERM)."""
        for pid in list(self._paused):
            self._signal_pid(pid, "SIGCONT")
        self._paused.clear()
        for process in [*self.sentinels, *self.servers]:
            process.stop()
        for proxy in self.proxies.values():
            proxy.close()

    def __enter__(self) -> ValkeyHA:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------

    def kill(self, server: LocalValkey) -> None:
        """SIGKILL a data server or a Sentinel (what its AOF fsynced survives)."""
        self._paused.discard(server.pid)
        server.kill()

    def pause(self, server: LocalValkey) -> None:
        """SIGSTOP: the process holds its sockets and answers nothing until
        :meth:`resume` (a primary that Sentinels will replace)."""
        pid = server.pid
        self._signal_pid(pid, "SIGSTOP")
        if pid is not None:  # None: never started, nothing to stop
            self._paused.add(pid)

    def resume(self, server: LocalValkey) -> None:
        """SIGCONT a paused process."""
        self._signal_pid(server.pid, "SIGCONT")
        self._paused.discard(server.pid)

    def restart(self, server: LocalValkey, *, keep_data: bool = True, alone: bool = False) -> None:
        """Start a stopped data server again, as a supervisor would: a replica of the
        current primary, or (``alone``) with no ``replicaof``, as it was when it was the
        primary (when no majority of Sentinels can name another). With its AOF or,
        without ``keep_data``, empty."""
        primary = None if alone else self.wait_primary()
        if server.running():
            self.kill(server)
        if not keep_data:
            server.wipe()
        server.options = self._data_options(primary, server)
        server.start()

    def heal(self, timeout: float = SETTLE, *, wait: bool = True) -> LocalValkey | None:
        """Undo every fault: resume what is paused, start the Sentinels that are
        stopped, start stopped data servers as replicas of the primary; with ``wait``,
        return the primary once the topology has settled (see :meth:`wait_settled`).
        A data server is started only once a majority of Sentinels names a primary,
        so without ``wait`` it may be left stopped: call again."""
        for pid in list(self._paused):
            self._signal_pid(pid, "SIGCONT")
        self._paused.clear()
        for sentinel in self.sentinels:
            if not sentinel.running():
                sentinel.start()
        primary = self.wait_primary(timeout) if wait else self.primary()
        if primary is not None:
            for server in self.servers:
                if not server.running():
                    self.restart(server)
        if wait:
            self.wait_settled(timeout)
        return primary

    def wait_primary(
        self, timeout: float = SETTLE, *, other_than: LocalValkey | None = None
    ) -> LocalValkey:
        """The primary once a majority of Sentinels name one (other than ``other_than``,
        if given) and it says it is one.

        Raises:
            ValkeyError: none in ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            primary = self.primary()
            if primary is not None and primary is not other_than:
                return primary
            if time.monotonic() > deadline:
                raise ValkeyError(f"Os Sentinels não apontaram um primário em {timeout:g} s.")
            time.sleep(0.02)

    def wait_failover(self, old: LocalValkey, timeout: float = SETTLE) -> LocalValkey:
        """The new primary once ``old`` was replaced (see :meth:`wait_primary`)."""
        return self.wait_primary(timeout, other_than=old)

    def wait_settled(self, timeout: float = SETTLE, *, sentinels_known: bool = True) -> None:
        """Wait until the primary counts every running data server as a good replica
        and (``sentinels_known``) every running Sentinel knows them and the others.

        Raises:
            ValkeyError: not settled in ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while not self._settled(sentinels_known):
            if time.monotonic() > deadline:
                raise ValkeyError(
                    f"O Valkey com réplicas e Sentinels não se acertou em {timeout:g} s."
                )
            time.sleep(0.05)

    # -- internals ---------------------------------------------------------------------

    def _settled(self, sentinels_known: bool) -> bool:
        if sentinels_known:
            primary = self.primary()
        else:
            primary = self.servers[0] if self.role(self.servers[0]) == "master" else None
        if primary is None:
            return False
        running = [s for s in self.servers if s.running() and s is not primary]
        if self.replicas_of(primary) != len(running) or not self._on_disk(primary, len(running)):
            return False
        if not sentinels_known:
            return True
        live = [s for s in self.sentinels if s.running() and s.pid not in self._paused]
        for sentinel in live:
            view = sentinel.view()
            if (
                int(view.get("num-slaves", -1)) < len(running)
                or int(view.get("num-other-sentinels", -1)) < len(live) - 1
                or view.get("flags") != "master"
            ):
                return False
        return True

    def address(self, server: LocalValkey) -> tuple[str, int]:
        """Where clients reach a data server: its proxy's address when proxied."""
        port = _port(server)
        proxy = self.proxies.get(port)
        return (proxy.host, proxy.port) if proxy else (server.host, port)

    def _on_disk(self, primary: LocalValkey, replicas: int) -> bool:
        """Whether a write on ``primary`` reaches the AOF of ``replicas`` replicas (a
        replica that just synced rewrites its AOF first, and until then WAITAOF does
        not count it)."""
        import redis

        with redis.Redis(host=primary.host, port=_port(primary), socket_timeout=2) as client:
            try:
                pipe = client.pipeline(transaction=False)
                pipe.set("wslab-ha:probe", "1")
                pipe.execute_command("WAIT", replicas, 100)
                pipe.execute_command("WAITAOF", 1, replicas, 100)
                _, _, (local, copies) = pipe.execute()
            except (redis.RedisError, OSError):
                return False
        return bool(local >= 1 and copies >= replicas)  # the replies are integers

    def _data_options(self, primary: LocalValkey | None, server: LocalValkey) -> list[str]:
        options = [
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            str(self.max_lag),
            # A full sync starts at once instead of waiting 5 s for more replicas.
            "--repl-diskless-sync-delay",
            "0",
        ]
        if server.port in self.proxies:
            host, port = self.address(server)
            options += ["--replica-announce-ip", host, "--replica-announce-port", str(port)]
        if primary is not None:
            host, port = self.address(primary)
            options += ["--replicaof", host, str(port)]
        return options

    def _by_port(self, port: int) -> LocalValkey | None:
        """The data server at ``port``, or behind the proxy at ``port``."""
        return next((s for s in self.servers if port in (s.port, self.address(s)[1])), None)

    @staticmethod
    def _signal_pid(pid: int | None, name: str) -> None:
        import signal

        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, getattr(signal, name))
