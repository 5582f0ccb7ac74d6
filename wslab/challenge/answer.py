"""The README's answer to Parte 2, written from a run rather than typed by hand.

The short part states the message with its true status in one sentence (received
live, at a UTC time, when this run reached the server; otherwise the recorded
message and the public solutions it comes from, linked, with the date they were
read), then the program (wslab/challenge/minimal.py as it is on disk: the test's
second deliverable) and a ten-second way to check it in a browser. The depth, after
``DETAILS_MARK``, tells where each source quotes the message, why the live check
could not run in this build, and the last live capture if an earlier online run
left one. The report folds the depth into ``<details>``.
"""

from __future__ import annotations

import inspect

from . import minimal
from .provenance import RECORDED_MESSAGE, SOURCES, SOURCES_READ_ON
from .result import FetchResult

DETAILS_MARK = "<!-- details -->"  # the report pipeline (tools.report.readme) splits here
COLD_START_S = 50  # Render: the first request after a spin-down waits about this long, or more
CONSOLE_CHECK = (
    'new WebSocket("wss://websocket-fh6l.onrender.com").onmessage = (e) => console.log(e.data)'
)


def part2_answer(live: FetchResult, capture: dict | None = None) -> str:
    """Markdown for the Parte 2 answer: short part, DETAILS_MARK, depth."""
    if live.ok:
        short = (
            f"O servidor envia `{live.message}`: recebida ao vivo de `{live.url}` em "
            f"{live.received_at} (UTC), logo após o handshake (HTTP {live.status})."
        )
    else:
        links = " e ".join(f"[{repo}](https://github.com/{repo})" for repo, _, _ in SOURCES)
        short = (
            f"O servidor envia `{RECORDED_MESSAGE}` logo após o handshake, segundo o README de "
            f"soluções públicas deste mesmo teste ({links}, lidas em {SOURCES_READ_ON}); este "
            "projeto não a observou, porque as máquinas em que é compilado não alcançam a internet."
        )
    program = inspect.getsource(minimal).strip()
    shown = (
        "O programa, `wslab/challenge/minimal.py`, conecta com a biblioteca `websocket-client`, "
        "faz o handshake (HTTP `101`), lê a primeira mensagem e fecha com o código 1000:"
        f"\n\n```python\n{program}\n```"
    )
    check = (
        "Para conferir em dez segundos, abra uma aba vazia (`about:blank`) e cole no console (F12): "
        f"`{CONSOLE_CHECK}`. Se o servidor estiver dormindo (plano gratuito do Render), a "
        f"primeira conexão pode levar {COLD_START_S} s ou mais."
    )
    depth = []
    if not live.ok:
        quoted = "; ".join(
            f"`{repo}`, no README do commit `{commit}` ({date})" for repo, commit, date in SOURCES
        )
        depth.append(
            f"Onde cada solução cita a mensagem: {quoted}. A réplica local "
            "(`python -m wslab.replica`) envia essa mesma mensagem, para que o cliente possa ser "
            "executado e testado sem rede."
        )
        depth.append(
            f"A tentativa ao vivo desta compilação falhou. Motivo dado pelo cliente: {live.explanation}"
        )
        if capture:
            depth.append(
                f"A última execução com rede que alcançou o servidor, em {capture['received_at']} "
                f"(UTC), recebeu: `{capture['message']}`."
            )
    depth.append(
        "Para rodar: `python -m wslab.challenge` (sem rede, ele avisa e usa a réplica local)."
    )
    return "\n\n".join([short, shown, check, DETAILS_MARK, *depth])
