"""The README's answer to Parte 2, written from a run rather than typed by hand.

The answer shows the program (wslab/challenge/minimal.py as it is on disk) and the message,
with its provenance: received live, at a UTC time, when this run reached the server;
otherwise the recorded message, saying that the live check could not run in this
build and quoting the last live capture if an earlier online run left one.
"""

from __future__ import annotations

import inspect

from . import minimal
from .provenance import PROVENANCE, RECORDED_MESSAGE
from .result import FetchResult


def part2_answer(live: FetchResult, capture: dict | None = None) -> str:
    """Markdown for the Parte 2 answer, from this run's live attempt and the last capture."""
    program = inspect.getsource(minimal).strip()
    lines = [f"```python\n{program}\n```", ""]
    if live.ok:
        lines.append(
            f"**Mensagem retornada pelo servidor:** `{live.message}` — recebida ao vivo de "
            f"`{live.url}` em {live.received_at} (UTC), com resposta HTTP {live.status}."
        )
    else:
        lines += [
            f"**Mensagem retornada pelo servidor:** `{RECORDED_MESSAGE}`",
            "",
            f"Procedência: {PROVENANCE}. A verificação ao vivo não pôde ser feita nesta "
            f"compilação do relatório: {live.explanation} A réplica local do projeto "
            "(`python -m wslab.replica`) envia essa mesma mensagem, para que o cliente possa "
            "ser executado e testado sem rede.",
        ]
        if capture:
            lines += [
                "",
                f"A última execução com rede que alcançou o servidor, em {capture['received_at']} "
                f"(UTC), recebeu: `{capture['message']}`.",
            ]
    lines += [
        "",
        "Para rodar: `python -m wslab.challenge` (sem rede, ele avisa e usa a réplica local).",
    ]
    return "\n".join(lines)
