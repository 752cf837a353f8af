"""The `hrm` command. Each subcommand lives beside the feature it drives and registers itself here.

A user error (unknown command, bad option, missing or malformed file), and a failure of the machine
the user can act on (a full disk, a read-only file system, missing permissions, no memory), ends in
one line on stderr and a non-zero exit; set HRM_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from hrm import __version__
from hrm.errors import HRMError

# Modules that define `register(subparsers)`. They must import heavy dependencies (torch) lazily,
# inside their handlers, so that `hrm --help` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "hrm.data.cli",
    "hrm.commands",
    "hrm.solve_cli",
    "hrm.viz.cli",
    "hrm.agent.cli",
)

# What pip installs this as (pyproject's `name`); `hrm` on PyPI is an unrelated project.
DISTRIBUTION = "hierarchical-reasoning-model"

EXIT_USAGE = 2
EXIT_ERROR = 1


class UsageError(HRMError):
    """A command line that does not parse."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hrm",
        description=(
            "Hierarchical Reasoning Model: build puzzle data, train, evaluate, solve, watch it reason."
        ),
    )
    parser.add_argument("--version", action="version", version=f"hrm {__version__} ({DISTRIBUTION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def _debug() -> bool:
    return os.environ.get("HRM_DEBUG", "").strip() not in ("", "0", "false", "no")


# Characters that end a line, as str.splitlines() knows them: shown escaped, so an error is one line
# whatever text (an argument, a file's content) it quotes.
_LINE_BREAKS = {ord(ch): repr(ch)[1:-1] for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _fail(message: str, code: int) -> int:
    print(f"hrm: error: {message.translate(_LINE_BREAKS)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return 0 if args.command is None else EXIT_USAGE
        result = args.handler(args)
        return int(result or 0)
    except UsageError as exc:
        if _debug():
            raise
        return _fail(str(exc).removeprefix("hrm: "), EXIT_USAGE)
    except HRMError as exc:
        if _debug():
            raise
        return _fail(str(exc), EXIT_ERROR)
    except FileNotFoundError as exc:
        if _debug():
            raise
        name = exc.filename or str(exc)
        return _fail(f"no such file or directory: {name}", EXIT_ERROR)
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        if _debug():
            raise
        return _fail(f"{exc.strerror or exc}: {exc.filename}", EXIT_ERROR)
    except (OSError, MemoryError) as exc:  # a full disk, a read-only file system, out of memory
        if _debug():
            raise
        from hrm.fileio import describe_os_error

        return _fail(describe_os_error(exc, "go on"), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
