"""The ``ecomlm`` command line: thin; each area registers its own verbs.

Each module listed below has ``register(app)`` adding its commands; heavy
imports (torch, transformers) happen inside the commands, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="ecomlm: compare instruction-tuned LLMs, fine-tuned PLMs and few-shot ICL "
    "on e-commerce tasks, then serve the winner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = (
    "ecomlm.data.commands",  # data stats / data generate
    "ecomlm.methods.commands",  # train / evaluate
    "ecomlm.analysis.commands",  # merge / analyze-adapters
    "ecomlm.study.commands",  # study / report
    "ecomlm.serve.commands",  # predict / serve
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
