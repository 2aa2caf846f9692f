"""The ``ecomlm`` command line: thin; each area registers its own verbs.

Each module listed below has ``register(app)`` adding its commands; heavy
imports (torch, transformers) happen inside the commands, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
import os
import sys

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


def main() -> None:
    """The console entry point: any error is one line naming what went wrong (and where);
    ``--debug`` (or ``ECOMLM_DEBUG=1``) shows the traceback instead."""
    debug = "--debug" in sys.argv[1:] or os.environ.get("ECOMLM_DEBUG") == "1"
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the CLI boundary: every error becomes one line
        if debug:
            raise
        from ecomlm.redact import redact

        message = redact(str(e)) or type(e).__name__
        typer.echo(f"error: {message.strip().splitlines()[0]} (--debug shows the traceback)",
                   err=True)  # fmt: skip
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
