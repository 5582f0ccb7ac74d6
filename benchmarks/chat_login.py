"""What a login costs with the chat's default KDF (scrypt N=2**14, r=8, p=1), and what
that means for someone guessing secrets.

Two measurements:

1. the raw hash: :meth:`wslab.chat.rules.kdf.Scrypt.hash` and :meth:`Scrypt.verify` of
   :data:`wslab.chat.rules.kdf.SCRYPT` (``hashlib.scrypt``), in this process, best and
   median of ``repeats``;
2. a full login over a socket: connect, handshake, ``hello`` of a registered user, and
   its ``welcome``, against a real server (``python -m wslab.chat serve`` with its
   default KDF), one login at a time.

Guesses per second per core is 1000 / (ms per verify): what one core of this machine
tries against a stolen record; the server's throttle (5 wrong secrets, then a
doubling wait) limits guesses through the socket far below that.

Run: ``python -m benchmarks.chat_login`` (writes benchmarks/results/chat_login.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from websockets.sync.client import connect

from benchmarks.chat_ingest import Server
from wslab.chat.rules.kdf import SCRYPT

__all__ = ["hash_costs", "login_costs", "main"]

RESULTS = Path(__file__).parent / "results" / "chat_login.json"
WAIT = 10.0


def _ms(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1e3


def hash_costs(repeats: int = 20) -> dict:
    """Milliseconds per SCRYPT hash and per verify (best and median)."""
    record = SCRYPT.hash("segredo")
    hashes = [_ms(lambda: SCRYPT.hash("segredo")) for _ in range(repeats)]
    verifies = [_ms(lambda: SCRYPT.verify("segredo", record)) for _ in range(repeats)]
    assert SCRYPT.verify("segredo", record) and not SCRYPT.verify("outro", record)
    return {
        "hash_ms_best": min(hashes),
        "hash_ms_median": statistics.median(hashes),
        "verify_ms_best": min(verifies),
        "verify_ms_median": statistics.median(verifies),
    }


def login_costs(repeats: int = 20) -> dict:
    """Milliseconds per full login of a registered user over a socket (best, median)."""
    hello = json.dumps({"type": "hello", "user": "ana", "secret": "segredo"})

    def login(url: str) -> None:
        with connect(url, open_timeout=WAIT, close_timeout=WAIT, compression=None) as ws:
            ws.send(hello)
            welcome = json.loads(ws.recv(timeout=WAIT))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"o login falhou: {welcome}")

    with tempfile.TemporaryDirectory(prefix="wslab-login-") as folder:
        server = Server(Path(folder), kdf_n=SCRYPT.n)
        try:
            login(server.url)  # registers ana
            times = [_ms(lambda: login(server.url)) for _ in range(repeats)]
        finally:
            server.stop()
    return {"login_ms_best": min(times), "login_ms_median": statistics.median(times)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())
    raw = hash_costs(args.repeats)
    full = login_costs(args.repeats)
    result = {
        "benchmark": "chat_login",
        "command": "python -m benchmarks.chat_login",
        "kdf": {
            "name": "scrypt",
            "n": SCRYPT.n,
            "r": SCRYPT.r,
            "p": SCRYPT.p,
            "memory_bytes": SCRYPT.memory,
        },
        "repeats": args.repeats,
        **raw,
        **full,
        "guesses_per_s_per_core": 1000 / raw["verify_ms_median"],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": list(os.getloadavg()),
        },
    }
    print(
        f"scrypt N={SCRYPT.n} r={SCRYPT.r} p={SCRYPT.p} ({SCRYPT.memory // 2**20} MiB): "
        f"hash {raw['hash_ms_median']:.1f} ms, verify {raw['verify_ms_median']:.1f} ms "
        f"(mediana), login completo pelo socket {full['login_ms_median']:.1f} ms; "
        f"{result['guesses_per_s_per_core']:.0f} palpites por segundo por núcleo"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"escrito em {args.output}")


if __name__ == "__main__":
    main()
