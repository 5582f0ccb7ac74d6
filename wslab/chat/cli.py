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
import ssl
import sys
from collections.abc import Coroutine
from typing import Any, NamedTuple

from ..argparse_pt import ArgumentParser, count, port_number, positive
from .assemble import choose_stores
from .errors import BadSetting, StoreError
from .net.connection import FRAMES_PER_SECOND
from .net.gate import Caps
from .net.http import parse_origin
from .net.logs import quiet_libraries
from .net.metrics import Metrics
from .net.probes import LOOPBACK
from .net.proxy import SOURCES, Network, TrustedProxies, parse_networks
from .net.service import (
    DRAIN_TIMEOUT,
    HELLO_TIMEOUT,
    MAX_PENDING_BYTES,
    OPEN_TIMEOUT,
    ChatService,
    Client,
)
from .net.tls import server_context
from .node import ChatNode, Limits
from .rules.addresses import Prefixes
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


class Settings(NamedTuple):
    """The production settings of ``serve``, checked (:func:`_settings`)."""

    context: ssl.SSLContext | None  # --certfile: the node serves TLS
    trusted: TrustedProxies
    public: list[str]
    allow: tuple[Network, ...]


def _settings(args: argparse.Namespace) -> Settings:
    """The production settings, checked: TLS context, trusted proxies, public URLs,
    /metrics networks. Raises :class:`BadSetting` with one sentence."""
    context = server_context(args.certfile, args.keyfile) if args.certfile else None
    trusted = TrustedProxies(parse_networks(args.trust_proxy), args.proxy_header)
    public = [parse_origin(url) for url in args.public_url]
    allow = parse_networks(args.metrics_allow or LOOPBACK)
    if args.keyfile and not args.certfile:
        raise BadSetting("--keyfile sem --certfile: diga também o certificado.")
    if context is not None and args.proxy_header == "proxy-protocol" and trusted:
        raise BadSetting(
            "--proxy-header proxy-protocol com --certfile não é suportado: o cabeçalho "
            "PROXY vem antes do TLS; termine o TLS no balanceador."
        )
    return Settings(context, trusted, public, allow)


async def _serve(args: argparse.Namespace, caps: Caps, settings: Settings) -> None:
    limits = Limits(
        max_rate=args.max_rate or None,
        burst=args.burst,
        address_share=args.address_share,
        login_free=args.login_free,
        registrations_per_minute=args.registrations_per_minute,
        registrations_per_minute_network=args.registrations_per_minute_network,
        max_users=args.max_users,
        unused_name_days=args.unused_name_days,
        login_wait=args.login_wait,
        new_names_per_minute=args.new_names_per_minute,
        replays_in_all_per_second=args.replays_in_all_per_second,
        prefixes=caps.prefixes,
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
    node: ChatNode[Client] = ChatNode(
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
        trusted=settings.trusted,
        public_urls=settings.public,
        metrics=Metrics(enabled=not args.no_metrics),
        metrics_allow=() if args.metrics_port else settings.allow,
        tls=settings.context is not None,
    )
    server = await service.serve(
        args.host,
        args.port,
        backlog=1024,
        open_timeout=args.open_timeout,
        ssl=settings.context,
    )
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, args.host, registry=service.metrics.registry)
    bound = server.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    log.info(
        "servindo o chat em %s://%s:%d/ (WebSocket em /ws; %s, época %s); Ctrl-C para parar",
        "https" if settings.context else "http",
        shown,
        bound[1],
        stores.where,
        node.epoch,
    )
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()  # the signal that came first

    def stopping(signum: int) -> None:
        if not stop.done():
            stop.set_result(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping, signum)
    if await stop == signal.SIGTERM:  # a balancer's rolling restart
        await service.drain(server, args.drain_timeout)
    else:  # Ctrl-C: the operator stops it
        log.info("parando: fechando as conexões com 1001")
        await service.shut_down(server)


def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a pair."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"use HOST:PORTA, não {text!r}")
    return host, port_number(port)


def _origin(text: str) -> str:
    try:
        return parse_origin(text)
    except BadSetting as error:  # argparse shows an ArgumentTypeError's own words
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
        "--metrics-port",
        type=port_number,
        default=0,
        help="/metrics numa porta só dela (0: na do chat)",
    )
    group.add_argument(
        "--no-metrics", action="store_true", help="não conta métricas (para medir o custo delas)"
    )
    group.add_argument(
        "--drain-timeout",
        type=positive,
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
        "--port",
        type=port_number,
        default=8765,
        metavar="PORTA",
        help="porta (0 escolhe uma livre)",
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
        type=positive,
        default=10.0,
        metavar="SEGUNDOS",
        help="com --redis: em quanto tempo os usuários de um nó que morreu saem do /who",
    )
    serve.add_argument(
        "--retention",
        type=count,
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
    # (option, type, default, metavar, help): every limit takes one value of its type.
    options = (
        (
            "--max-rate",
            float,
            defaults.max_rate,
            "N",
            "mensagens por segundo por usuário, em média (0: sem limite)",
        ),
        (
            "--max-frames",
            float,
            FRAMES_PER_SECOND,
            "N",
            "frames por segundo por conexão, pings incluídos (0: sem limite)",
        ),
        (
            "--burst",
            count,
            defaults.burst,
            "N",
            "mensagens de uma vez",
        ),
        (
            "--address-share",
            positive,
            defaults.address_share,
            "N",
            "um endereço pode enviar o ritmo de quantos usuários",
        ),
        (
            "--login-free",
            count,
            defaults.login_free,
            "N",
            "senhas erradas seguidas, por nome, por endereço e por rede, antes de a "
            "espera (1 s, dobrando até 5 min) começar",
        ),
        (
            "--registrations-per-minute",
            count,
            defaults.registrations_per_minute,
            "N",
            "nomes novos por minuto por endereço",
        ),
        (
            "--registrations-per-minute-network",
            count,
            defaults.registrations_per_minute_network,
            "N",
            "nomes novos por minuto por rede (IPv4 /24, IPv6 /48; 0: sem limite)",
        ),
        (
            "--new-names-per-minute",
            count,
            defaults.new_names_per_minute,
            "N",
            "nomes novos por minuto no total, enquanto o scrypt está ocupado (0: sem cota)",
        ),
        (
            "--replays-in-all-per-second",
            positive,
            defaults.replays_in_all_per_second,
            "N",
            "retomadas por segundo no total, enquanto o scrypt está ocupado",
        ),
        (
            "--login-wait",
            positive,
            defaults.login_wait,
            "SEGUNDOS",
            "segundos que um login espera, no máximo, pela vez no scrypt",
        ),
        (
            "--max-users",
            count,
            defaults.max_users,
            "N",
            "nomes registrados no total",
        ),
        (
            "--unused-name-days",
            positive,
            defaults.unused_name_days,
            "DIAS",
            "dias até expirar um nome registrado e nunca mais usado",
        ),
        (
            "--max-connections",
            count,
            caps.max_connections,
            "N",
            "conexões abertas no total (cortado ao limite de arquivos abertos)",
        ),
        (
            "--max-per-address",
            count,
            caps.max_per_address,
            "N",
            "conexões abertas por endereço (IPv4, ou IPv6 /64)",
        ),
        (
            "--max-per-network",
            count,
            caps.max_per_network,
            "N",
            "conexões abertas por rede (IPv4 /24, IPv6 /48)",
        ),
        (
            "--max-waiting",
            count,
            caps.max_waiting,
            "N",
            "conexões ainda sem sessão (handshake ou hello por vir), no total",
        ),
        (
            "--max-waiting-per-address",
            count,
            caps.max_waiting_per_address,
            "N",
            "conexões ainda sem sessão, por endereço",
        ),
        (
            "--max-waiting-per-network",
            count,
            caps.max_waiting_per_network,
            "N",
            "conexões ainda sem sessão, por rede",
        ),
        (
            "--max-refused",
            count,
            caps.max_refused,
            "N",
            "conexões recusadas mantidas meio fechadas ao mesmo tempo (para a resposta "
            "chegar); as demais são fechadas na hora",
        ),
        (
            "--open-timeout",
            positive,
            OPEN_TIMEOUT,
            "SEGUNDOS",
            "segundos para o pedido HTTP (handshake) chegar inteiro",
        ),
        (
            "--hello-timeout",
            positive,
            HELLO_TIMEOUT,
            "SEGUNDOS",
            "segundos para o hello chegar",
        ),
        (
            "--max-pending",
            count,
            MAX_PENDING_BYTES,
            "BYTES",
            "bytes não lidos por um cliente antes de fechá-lo com 1013",
        ),
        ("--kdf-n", int, Scrypt().n, "N", "custo N do scrypt para senhas novas (potência de 2)"),
    )
    for flag, kind, default, metavar, text in options:
        limits.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    for field, what in (
        ("ipv4_network", "uma rede IPv4"),
        ("ipv6_network", "uma rede IPv6"),
        ("ipv6_host", "um endereço IPv6 (uma máquina)"),
    ):
        limits.add_argument(
            "--" + field.replace("_", "-"),
            type=count,
            default=getattr(caps.prefixes, field),
            metavar="BITS",
            help=f"prefixo que conta como {what}",
        )
    return parser


def _run(coroutine: Coroutine[Any, Any, None], loop: str) -> None:
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
    # Refused connections that linger hold descriptors too (at most an eighth of them):
    # they come off the room.
    max_refused = min(args.max_refused, files // 8)
    max_connections = min(args.max_connections, max(1, files - FD_MARGIN - max_refused))
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
    try:
        prefixes = Prefixes(args.ipv6_host, args.ipv4_network, args.ipv6_network)
    except ValueError:
        parser.error("prefixos: IPv4 até 32 bits, e rede IPv6 <= endereço IPv6 <= 128 bits")
    caps = Caps(
        max_connections=max_connections,
        max_per_address=args.max_per_address,
        max_per_network=args.max_per_network,
        max_waiting=max_waiting,
        max_waiting_per_address=args.max_waiting_per_address,
        max_waiting_per_network=args.max_waiting_per_network,
        max_refused=max_refused,
        prefixes=prefixes,
    )
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
