"""``python -m wslab.chat serve``: the chat server and its browser client on one port.

Ctrl-C (or SIGTERM) closes every connection with 1001 and exits with status 0.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .router import ChatRouter
from .server import ChatService


async def _serve(host: str, port: int, retention: int, allowed_hosts: list[str]) -> None:
    service = ChatService(ChatRouter(retention), allowed_hosts=allowed_hosts)
    server = await service.serve(host, port)
    bound = server.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    logging.getLogger("wslab.chat.server").info(
        "servindo o chat em http://%s:%d/ (WebSocket em /ws); Ctrl-C para parar",
        shown,
        bound[1],
    )
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    await stop
    logging.getLogger("wslab.chat.server").info("parando: fechando as conexões com 1001")
    await service.shut_down(server)  # 1001 (going away) to every connection


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"porta deve ser um número, não {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"porta deve estar entre 0 e 65535, não {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wslab.chat", description="O chat do wslab na rede."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve o chat (WebSocket em /ws, cliente em /)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8765)
    serve.add_argument(
        "--retention", type=int, default=1000, help="mensagens guardadas para retomadas"
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NOME",
        help="um nome DNS pelo qual o servidor é acessado (além de localhost e do IP)",
    )
    args = parser.parse_args(argv)
    if args.retention < 0:
        parser.error("--retention deve ser >= 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(_serve(args.host, args.port, args.retention, args.allow_host))
    except OSError as error:
        print(f"Não foi possível servir em {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
