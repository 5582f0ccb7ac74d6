"""``python -m wslab.challenge``: read the test server's message, or say why not."""

from __future__ import annotations

from ..argparse_pt import ArgumentParser, positive
from .client import DEFAULT_TIMEOUT, fetch_or_replica
from .provenance import DEFAULT_URL, PROVENANCE
from .result import InvalidURL


def main(argv: list[str] | None = None) -> int:
    """Exit 0 with a message (live, or the replica's, marked as such), 1 without, 2 on a bad URL."""
    parser = ArgumentParser(
        prog="python -m wslab.challenge",
        description="Conecta ao servidor WebSocket do teste e mostra a mensagem que ele envia.",
    )
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"padrão: {DEFAULT_URL}")
    parser.add_argument(
        "--no-replica", action="store_true", help="não recorrer à réplica local em caso de falha"
    )
    parser.add_argument(
        "--timeout",
        type=positive,
        default=DEFAULT_TIMEOUT,
        metavar="SEGUNDOS",
        help="limite da tentativa inteira",
    )
    args = parser.parse_args(argv)

    print(f"Conectando a {args.url} (limite de {args.timeout:g} s)...", flush=True)
    try:
        live, local = fetch_or_replica(
            args.url,
            use_replica=not args.no_replica,
            timeout=args.timeout,
            on_progress=lambda text: print(f"  {text}", flush=True),
        )
    except InvalidURL as error:
        print(f"Erro: {error}")
        return 2
    if live.ok:
        print(f"Mensagem: {live.message}")
        print(
            f"Origem: servidor ao vivo ({live.url}), recebida em {live.received_at} UTC, em {live.elapsed:.2f} s."
        )
        return 0
    print(f"Falha ({live.failure and live.failure.name}): {live.explanation}")
    if local is None:
        return 1
    if not local.ok:
        print(f"A réplica local também falhou: {local.explanation}")
        return 1
    print(
        "ATENÇÃO: o servidor do teste não entregou a mensagem; a mensagem abaixo veio da RÉPLICA LOCAL."
    )
    print(f"Mensagem: {local.message}")
    print(f"Origem: réplica local ({local.url}), que reproduz a mensagem registrada: {PROVENANCE}.")
    return 0
