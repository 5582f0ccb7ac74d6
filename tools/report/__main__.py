"""python -m tools.report build|check|words (see the package docstring)."""

from __future__ import annotations

import argparse
import sys

from tools.report import pipeline
from tools.report.words import visible_words

STALE_HINT = (
    "Rode `make report` (reexecuta os notebooks e regenera exported/ e o README) "
    "e faça commit de notebooks/, exported/ e README.md."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.report",
        description="Executa os notebooks, exporta-os e regenera o README.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "command",
        choices=["build", "check", "words"],
        help="build: executa e regenera; check: sai com 1 se algo estiver desatualizado; "
        "words: conta as palavras do README fora de <details> e de código",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        help="build: executa só estes (nomes sem .ipynb); os demais só são exportados",
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        pipeline.build(args.notebooks)
        return 0
    if args.command == "words":
        print(visible_words(pipeline.README.read_text(encoding="utf-8")))
        return 0
    problems = pipeline.stale()
    for problem in problems:
        print(problem)
    if problems:
        print(STALE_HINT)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
