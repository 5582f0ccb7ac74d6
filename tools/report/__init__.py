"""The report pipeline: execute the notebooks, export them, regenerate the README.

    python -m tools.report build   # what `make report` runs
    python -m tools.report build 03_desafio_servidor   # execute only that one, export all
    python -m tools.report check   # exit 1 when README or exported/ lag the notebooks
    python -m tools.report words   # the README's words outside <details> and code blocks

Answers reach the README only from the notebooks (see ``readme``); exports link
their own siblings (see ``links``).
"""
