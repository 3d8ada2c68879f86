"""Command-line option types and one-line error reporting, shared by ``python -m abanet_lib``
(abanet_lib/cli.py) and ``predict``.

Every option type raises ``argparse.ArgumentTypeError``, which argparse reports on one line as
"argument --name: <message>" (exit code 2). :func:`is_deliberate` tells errors the project
raises on purpose (one line, exit 2) from bugs (traceback, exit 1).
"""
from __future__ import annotations

import argparse
import math
import re
import traceback
from pathlib import Path

class OptionError(ValueError):
    """A command-line option whose value is wrong; the message starts with the option."""


class ModelBuildError(ValueError):
    """The model of a run could not be built from its options (--model, --model-kwargs, ...)."""


class CliParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (exit code 2), naming the option."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------
# Option types: each raises ArgumentTypeError, which argparse reports on one line as
# "argument --name: <message>"
# ---------------------------------------------------------------------------------------
def bool_option(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


_NONE_WORDS = ("none", "null", "")


def int_option(minimum: int | None = None, maximum: int | None = None, multiple_of: int | None = None,
               optional: bool = False):
    """Type of an integer option in ``[minimum, maximum]`` (``none`` allowed when ``optional``)."""

    def parse(text: str):
        if optional and text.strip().lower() in _NONE_WORDS:
            return None
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer{' or none' if optional else ''}, "
                                             f"got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        if multiple_of and value % multiple_of:
            raise argparse.ArgumentTypeError(f"must be a multiple of {multiple_of}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def float_option(minimum: float | None = None, maximum: float | None = None, min_open: bool = False,
                 max_open: bool = False, optional: bool = False):
    """Type of a finite float option in a range (``min_open``: strictly above ``minimum``)."""

    def parse(text: str):
        if optional and text.strip().lower() in _NONE_WORDS:
            return None
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number{' or none' if optional else ''}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and (value <= minimum if min_open else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if min_open else '>='} {minimum}, got {value}")
        if maximum is not None and (value >= maximum if max_open else value > maximum):
            raise argparse.ArgumentTypeError(f"must be {'<' if max_open else '<='} {maximum}, got {value}")
        return value

    parse.__name__ = "float"
    return parse


def choice_option(choices, several: bool = False):
    """Type of a string option out of ``choices`` (``several``: comma-separated, at least one)."""
    choices = tuple(choices)

    def parse(text: str):
        items = tuple(x.strip() for x in text.split(",")) if several else (text.strip(),)
        if not any(items) or (several and any(not x for x in items)):
            raise argparse.ArgumentTypeError(f"expected {'comma-separated values of' if several else 'one of'} "
                                             f"{', '.join(choices)}, got {text!r}")
        bad = [x for x in items if x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown value {', '.join(map(repr, bad))}; expected "
                                             f"{'comma-separated values of' if several else 'one of'} "
                                             f"{', '.join(choices)}")
        if several and len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"a value is repeated in {text!r}")
        return items if several else items[0]

    parse.__name__ = "choice"
    return parse


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device_option(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (which must exist on this machine), ``mps``."""
    value = text.strip().lower()
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    if value.startswith("cuda") or value == "mps":
        import torch  # local import: torch takes seconds to import; --help and parsing need none

        if value == "mps":
            if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
                raise argparse.ArgumentTypeError("'mps' requested but it is not available on this machine")
        elif not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} requested but CUDA is not available on this machine; "
                                             "use cpu or auto")
        elif ":" in value and int(value.split(":")[1]) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} "
                                             "CUDA device(s), numbered from 0")
    return value


def nonempty_option(text: str) -> str:
    """Any non-empty text (stripped)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty value")
    return text.strip()


def folder_option(must_exist: bool = False):
    """Type of a folder option: never an existing file; ``must_exist``: an existing folder."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError("expected a folder path, got ''")
        path = Path(text).expanduser()
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file; expected a folder")
        if must_exist and not path.is_dir():
            raise argparse.ArgumentTypeError(f"folder {path} does not exist")
        return text

    parse.__name__ = "folder"
    return parse


def file_option(text: str) -> str:
    """An existing file."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: " + ("is a folder; expected a file" if path.is_dir()
                                                        else "no such file"))
    return text



def raised_at(err: BaseException) -> list[traceback.FrameSummary]:
    """The frames of the error's traceback, innermost last."""
    return traceback.extract_tb(err.__traceback__)


#: Error classes the project raises on purpose (matched by name: some live in modules that
#: are slow to import, and registry.RunRecordError may not exist yet).
DELIBERATE_ERRORS = ("DataError", "PhotoError", "OutputFolderError", "OptionError", "ModelBuildError",
                     "RunRecordError", "RunBusyError", "RunFailedError",
                     "NonFiniteLossError", "NotebookFailed")
#: Never deliberate, wherever raised: these are bugs.
_BUG_ERRORS = (TypeError, AttributeError, KeyError, IndexError, AssertionError, ZeroDivisionError,
               NameError, RecursionError, NotImplementedError)
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def is_deliberate(err: BaseException) -> bool:
    """True for errors the project raises on purpose (shown as one line), False for bugs.

    Deliberate: the project's own error classes; ValueError, RuntimeError, ImportError and
    OSError raised by a ``raise`` in abanet_lib itself; any OSError naming a file (permission,
    missing file, full disk). Everything else (TypeError, KeyError, ... and errors raised
    inside other libraries) is a bug and keeps its traceback.
    """
    if any(c.__name__ in DELIBERATE_ERRORS for c in type(err).__mro__):
        return True
    if isinstance(err, _BUG_ERRORS):
        return False
    if isinstance(err, OSError) and getattr(err, "filename", None):
        return True
    if isinstance(err, (ValueError, RuntimeError, ImportError, OSError)):
        frames = raised_at(err)
        return bool(frames) and str(Path(frames[-1].filename).resolve()).startswith(_PACKAGE_DIR)
    return False


def one_line(err: BaseException) -> str:
    """The error's message on one line (its lines joined with '; ')."""
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    text = "".join(line if i == 0 else (" " if lines[i - 1][-1] in ".:;," else "; ") + line
                   for i, line in enumerate(lines))
    return text or type(err).__name__
