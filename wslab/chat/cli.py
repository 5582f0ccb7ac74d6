"""``python -m wslab.chat serve`` (and ``wslab-chat serve``): the chat server and its browser client on one port.

History and users live in a SQLite file (``--db``, default ``wslab-chat.db`` in the
working directory), so a restart, or a crash, loses nothing that was acknowledged; or,
with ``--redis redis://HOST:PORT/DB``, in a Redis (or Valkey) that any number of nodes
share, with presence and shared limits, to form one chat (:mod:`wslab.chat.stores.redis`);
or, with ``--redis-sentinel HOST:PORT`` (one per Sentinel) and ``--redis-service NAME``,
in a Valkey primary with replicas that the Sentinels watch: a line is then echoed only
once a replica has it, and the node follows a failover by itself.
SIGTERM drains the node (:meth:`ChatService.drain`): ``/readyz`` turns 503, every
session is closed with 1012 once the lines it sent are answered, and the process exits
with status 0 within ``--drain-timeout`` seconds; Ctrl-C closes every connection with
1001 at once. In production (notebook 07):
``--certfile``/``--keyfile`` serve https and wss directly; behind a proxy,
``--trust-proxy`` and ``--public-url``. A store that cannot be opened, or a bad
certificate, network or URL, ends the start with one pt-BR sentence and status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import sys

from ..argparse_pt import ArgumentParser
from .assemble import choose_stores
from .errors import StoreError
from .net.gate import Caps
from .net.http import parse_origin
from .net.logs import quiet_libraries
from .net.metrics import Metrics
from .net.probes import LOOPBACK
from .net.proxy import SOURCES, TrustedProxies, parse_networks
from .net.service import (
    DRAIN_TIMEOUT,
    FRAMES_PER_SECOND,
    HELLO_TIMEOUT,
    MAX_PENDING_BYTES,
    OPEN_TIMEOUT,
    ChatService,
)
from .net.tls import server_context
from .node import ChatNode, Limits
from .rules.kdf import Scrypt

DEFAULT_DB = "wslab-chat.db"
PIPELINE = 32  # lines of one connection waiting for their commit at once (an ordered log)
FD_MARGIN = 64  # descriptors kept for the listening socket, the database, the log...

log = logging.getLogger(__name__)


def _raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class BadSetting(ValueError):
    """A setting of ``serve`` that cannot be used (a pt-BR sentence): exit 1."""


def _settings(args: argparse.Namespace) -> dict:
    """The production settings, checked: TLS context, trusted proxies, public URLs,
    /metrics networks. Raises :class:`BadSetting` with one sentence."""
    try:
        context = server_context(args.certfile, args.keyfile) if args.certfile else None
        trusted = TrustedProxies(parse_networks(args.trust_proxy), args.proxy_header)
        public = [parse_origin(url) for url in args.public_url]
        allow = parse_networks(args.metrics_allow or LOOPBACK)
    except ValueError as error:
        raise BadSetting(str(error)) from None
    if args.keyfile and not args.certfile:
        raise BadSetting("--keyfile sem --certfile: diga também o certificado.")
    if context is not None and args.proxy_header == "proxy-protocol" and trusted:
        raise BadSetting(
            "--proxy-header proxy-protocol com --certfile não é suportado: o cabeçalho "
            "PROXY vem antes do TLS; termine o TLS no balanceador."
        )
    return {"ssl": context, "trusted": trusted, "public": public, "allow": allow}


async def _serve(args: argparse.Namespace, caps: Caps, settings: dict) -> None:
    limits = Limits(
        max_rate=args.max_rate or None,
        burst=args.burst,
        address_share=args.address_share,
        login_free=args.login_free,
        registrations_per_minute=args.registrations_per_minute,
        max_users=args.max_users,
    )
    redis = args.redis
    if args.redis_sentinel:
        # Imported here: the Redis client weighs ~5 MiB that a node on SQLite never needs.
        from .stores.redis.client import SentinelService

        redis = SentinelService(tuple(args.redis_sentinel), args.redis_service)
    stores = choose_stores(
        db=None if redis else args.db,
        redis=redis,
        retention=args.retention,
        limits=limits,
        presence_ttl=args.presence_ttl,
    )
    node = ChatNode(
        stores.log,
        stores.credentials,
        presence=stores.presence,
        limiter=stores.limiter,
        kdf=Scrypt(n=args.kdf_n),
        limits=limits,
    )
    service = ChatService(
        node,
        hello_timeout=args.hello_timeout,
        max_pending=args.max_pending,
        allowed_hosts=args.allow_host,
        caps=caps,
        other_nodes=args.node,
        allowed_origins=args.allow_origin,
        pipeline=PIPELINE,  # where the log keeps call order (SQLite, Redis), else 1
        max_frames=args.max_frames or None,
        trusted=settings["trusted"],
        public_urls=settings["public"],
        metrics=Metrics(enabled=not args.no_metrics),
        metrics_allow=() if args.metrics_port else settings["allow"],
        tls=settings["ssl"] is not None,
    )
    server = await service.serve(
        args.host,
        args.port,
        backlog=1024,
        open_timeout=args.open_timeout,
        ssl=settings["ssl"],
    )
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, args.host, registry=service.metrics.registry)
    bound = server.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    log.info(
        "servindo o chat em %s://%s:%d/ (WebSocket em /ws; %s, época %s); Ctrl-C para parar",
        "https" if settings["ssl"] else "http",
        shown,
        bound[1],
        stores.where,
        node.epoch,
    )
    loop = asyncio.get_running_loop()
    stop = loop.create_future()  # the signal that came first
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda s=signum: stop.done() or stop.set_result(s))
    if await stop == signal.SIGTERM:  # a balancer's rolling restart
        await service.drain(server, args.drain_timeout)
    else:  # Ctrl-C: the operator stops it
        log.info("parando: fechando as conexões com 1001")
        await service.shut_down(server)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"porta deve ser um número, não {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"porta deve estar entre 0 e 65535, não {port}")
    return port


def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a pair."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"use HOST:PORTA, não {text!r}")
    return host, _port(port)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"deve ser um número inteiro, não {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"deve ser >= 0, não {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"deve ser um número, não {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"deve ser > 0, não {text}")
    return value


def _origin(text: str) -> str:
    try:
        return parse_origin(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_production(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("em produção (capítulo 07)")
    group.add_argument(
        "--certfile", metavar="PEM", help="certificado (e cadeia): serve https e wss"
    )
    group.add_argument("--keyfile", metavar="PEM", help="chave do certificado")
    group.add_argument(
        "--trust-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="rede de um proxy confiável (repita): só dele o endereço do cliente é lido "
        "do cabeçalho de --proxy-header; de qualquer outro, ignorado",
    )
    group.add_argument(
        "--proxy-header",
        choices=SOURCES,
        default="x-forwarded-for",
        help="como o proxy diz quem é o cliente (proxy-protocol: o cabeçalho PROXY v1/v2 "
        "de um balanceador de camada 4, exigido dos proxies confiáveis)",
    )
    group.add_argument(
        "--public-url",
        action="append",
        default=[],
        metavar="URL",
        help="https://HOST[:PORTA] por onde os usuários chegam (repita): Host e Origin "
        "conferidos com ela, o navegador volta sempre por ela",
    )
    group.add_argument(
        "--metrics-allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="rede que pode ler /metrics (repita; padrão: loopback)",
    )
    group.add_argument(
        "--metrics-port", type=_port, default=0, help="/metrics numa porta só dela (0: na do chat)"
    )
    group.add_argument(
        "--no-metrics", action="store_true", help="não conta métricas (para medir o custo delas)"
    )
    group.add_argument(
        "--drain-timeout",
        type=_positive,
        default=DRAIN_TIMEOUT,
        metavar="SEGUNDOS",
        help="no SIGTERM: /readyz 503, cada sessão fechada com 1012 depois de respondidas "
        "as linhas já lidas; o processo sai em no máximo este tempo (mais o fechamento "
        "do armazenamento, até 5 s)",
    )


def _parser() -> argparse.ArgumentParser:
    """The command line, in pt-BR down to argparse's own words (:mod:`wslab.argparse_pt`)."""
    parser = ArgumentParser(prog="python -m wslab.chat", description="O chat do wslab na rede.")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMANDO", title="comandos"
    )
    serve = commands.add_parser(
        "serve",
        help="serve o chat (WebSocket em /ws, cliente em /)",
        description="Serve o chat: WebSocket em /ws, o cliente para navegador em /.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", metavar="ENDEREÇO", help="endereço onde escutar"
    )
    serve.add_argument(
        "--port", type=_port, default=8765, metavar="PORTA", help="porta (0 escolhe uma livre)"
    )
    serve.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default=_default_loop(),
        help="o event loop (uvloop, mais rápido, onde instala)",
    )
    where = serve.add_mutually_exclusive_group()
    where.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="ARQUIVO",
        help="banco SQLite com o histórico e os usuários (':memory:' não guarda nada)",
    )
    where.add_argument(
        "--redis",
        metavar="URL",
        help="redis://HOST:PORTA/BANCO: histórico, usuários e presença num Redis (ou "
        "Valkey) compartilhado; vários nós no mesmo Redis formam um só chat",
    )
    where.add_argument(
        "--redis-sentinel",
        action="append",
        type=_address,
        metavar="HOST:PORTA",
        help="um Sentinel que vigia o Valkey primário (repita para cada um): como --redis, "
        "mas com réplicas; uma mensagem só é confirmada depois de copiada numa réplica, "
        "e o nó segue o novo primário depois de um failover",
    )
    serve.add_argument(
        "--redis-service",
        default="wslab",
        metavar="NOME",
        help="com --redis-sentinel: o nome do primário nos Sentinels (sentinel monitor NOME ...)",
    )
    serve.add_argument(
        "--presence-ttl",
        type=_positive,
        default=10.0,
        metavar="SEGUNDOS",
        help="com --redis: em quanto tempo os usuários de um nó que morreu saem do /who",
    )
    serve.add_argument(
        "--retention",
        type=_count,
        default=1000,
        metavar="N",
        help="mensagens guardadas para retomadas",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NOME",
        help="um nome DNS pelo qual o servidor é acessado (além de localhost e do IP)",
    )
    serve.add_argument(
        "--node",
        action="append",
        default=[],
        type=_origin,
        metavar="URL",
        help="com --redis: http://HOST:PORTA de outro nó do mesmo chat (repita para cada "
        "um); o navegador que perde este nó continua noutro, e as páginas dele podem abrir /ws",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        type=_origin,
        metavar="ORIGEM",
        help="http(s)://HOST:PORTA de outra página que pode abrir /ws (além deste nó e dos --node)",
    )
    _add_production(serve)
    limits = serve.add_argument_group("limites por cliente")
    defaults, caps = Limits(), Caps()
    limits.add_argument(
        "--max-rate",
        type=float,
        default=defaults.max_rate,
        metavar="N",
        help="mensagens por segundo por usuário, em média (0: sem limite)",
    )
    limits.add_argument(
        "--max-frames",
        type=float,
        default=FRAMES_PER_SECOND,
        metavar="N",
        help="frames por segundo por conexão, pings incluídos (0: sem limite)",
    )
    limits.add_argument(
        "--burst", type=_count, default=defaults.burst, metavar="N", help="mensagens de uma vez"
    )
    limits.add_argument(
        "--address-share",
        type=_positive,
        default=defaults.address_share,
        metavar="N",
        help="um endereço pode enviar o ritmo de quantos usuários",
    )
    limits.add_argument(
        "--login-free",
        type=_count,
        default=defaults.login_free,
        metavar="N",
        help="senhas erradas seguidas, por nome e por endereço, antes de a "
        "espera (1 s, dobrando até 5 min) começar",
    )
    limits.add_argument(
        "--registrations-per-minute",
        type=_count,
        default=defaults.registrations_per_minute,
        metavar="N",
        help="nomes novos por minuto por endereço",
    )
    limits.add_argument(
        "--max-users",
        type=_count,
        default=defaults.max_users,
        metavar="N",
        help="nomes registrados no total",
    )
    limits.add_argument(
        "--max-connections",
        type=_count,
        default=caps.max_connections,
        metavar="N",
        help="conexões abertas no total (cortado ao limite de arquivos abertos)",
    )
    limits.add_argument(
        "--max-per-address",
        type=_count,
        default=caps.max_per_address,
        metavar="N",
        help="conexões abertas por endereço",
    )
    limits.add_argument(
        "--max-waiting",
        type=_count,
        default=caps.max_waiting,
        metavar="N",
        help="conexões ainda sem sessão (handshake ou hello por vir), no total",
    )
    limits.add_argument(
        "--max-waiting-per-address",
        type=_count,
        default=caps.max_waiting_per_address,
        metavar="N",
        help="conexões ainda sem sessão, por endereço",
    )
    limits.add_argument(
        "--open-timeout",
        type=_positive,
        default=OPEN_TIMEOUT,
        metavar="SEGUNDOS",
        help="segundos para o pedido HTTP (handshake) chegar inteiro",
    )
    limits.add_argument(
        "--hello-timeout",
        type=_positive,
        default=HELLO_TIMEOUT,
        metavar="SEGUNDOS",
        help="segundos para o hello chegar",
    )
    limits.add_argument(
        "--max-pending",
        type=_count,
        default=MAX_PENDING_BYTES,
        metavar="BYTES",
        help="bytes não lidos por um cliente antes de fechá-lo com 1013",
    )
    limits.add_argument(
        "--kdf-n",
        type=int,
        default=Scrypt().n,
        metavar="N",
        help="custo N do scrypt para senhas novas (potência de 2)",
    )
    return parser


def _run(coroutine, loop: str) -> None:
    """``asyncio.run`` on uvloop (the default where it installs) or asyncio's own loop."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        Scrypt(n=args.kdf_n)
    except ValueError:
        parser.error("--kdf-n deve ser uma potência de 2 maior que 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    quiet_libraries(logging.getLogger().handlers[0])
    logging.getLogger("websockets").setLevel(logging.WARNING)
    files = _raise_fd_limit()
    max_connections = min(args.max_connections, max(1, files - FD_MARGIN))
    # Connections still waiting never take more than half the room, so sessions can
    # always be opened beside a flood of slow handshakes.
    max_waiting = min(args.max_waiting, max(1, max_connections // 2))
    if max_connections < args.max_connections:
        log.info(
            "limite de arquivos abertos %d: no máximo %d conexões, %d ainda sem sessão",
            files,
            max_connections,
            max_waiting,
        )
    caps = Caps(max_connections, args.max_per_address, max_waiting, args.max_waiting_per_address)
    try:
        settings = _settings(args)
    except BadSetting as error:
        print(error, file=sys.stderr)
        return 1
    try:
        _run(_serve(args, caps, settings), args.loop)
    except StoreError as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"Não foi possível servir em {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
