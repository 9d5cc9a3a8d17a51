"""One way for every console command to report a user's mistake: one line, exit status 2, no traceback.

A *user error* is a mistake in what the user gave a command (an option, an option file, a checkpoint,
an image): the message names the option key and the file or value at fault, and a traceback would
only hide it. Anything else is a programming error and raises as usual. ``--debug`` or
``AESOP_DEBUG=1`` prints the traceback of a user error too.

What counts as a user error:

- a :class:`UserError` (or one of its subclasses below, which are also ValueError, KeyError or
  FileNotFoundError, so existing ``except`` clauses keep working);
- a ValueError, KeyError or FileNotFoundError raised by an explicit ``raise`` statement in this
  package's own code (our checks, which name the option key), or an exception type a command
  passes to :func:`command` (e.g. its own ``EvalError``);
- ``SystemExit`` with a message (``sys.exit('aesop-x: error: ...')``), as some commands report
  their own errors; the status becomes 2.
"""
import functools
import linecache
import os
import sys
import traceback
from os import path as osp
from typing import Callable, Optional, Sequence, Tuple, Type, TypeVar

DEBUG_ENV = 'AESOP_DEBUG'
DEBUG_FLAG = '--debug'
USER_ERROR_STATUS = 2
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
CHECK_ERROR_TYPES: Tuple[Type[BaseException], ...] = (ValueError, KeyError, FileNotFoundError, NotADirectoryError,
                                                       IsADirectoryError)

F = TypeVar('F', bound=Callable[..., object])


class UserError(Exception):
    """A mistake in what the user gave: an option, an option file, a checkpoint, an image."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise print their message in quotes
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class OptionError(UserError, ValueError):
    """An option value (or an option file) that cannot work."""


class OptionKeyError(UserError, KeyError):
    """An option that names a key that does not exist (e.g. a param_key not in the file)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder that an option names does not exist."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read safely, or that does not fit the configured network."""


class DataError(UserError, ValueError):
    """Input data that cannot be used: NaN or Inf values, an unreadable image, a wrong size."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that needs a type outside the allowlist to load (it could run code)."""


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """``--debug`` on the command line or ``AESOP_DEBUG`` set to a true value."""
    argv = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def raised_by_our_check(err: BaseException) -> bool:
    """Whether ``err`` comes from an explicit ``raise`` statement in this package (one of our checks).

    A ValueError from torch or a KeyError from ``d[key]`` in our code is not: those are bugs.
    """
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = osp.abspath(tb.tb_frame.f_code.co_filename)
    if not filename.startswith(PACKAGE_DIR + os.sep):
        return False
    return linecache.getline(filename, tb.tb_lineno).lstrip().startswith('raise')


def is_user_error(err: BaseException, extra_types: Tuple[Type[BaseException], ...] = ()) -> bool:
    # by name too: a reloaded module (importlib.reload) has its own copy of the UserError class
    if any(cls.__name__ == UserError.__name__ and cls.__module__ == __name__ for cls in type(err).__mro__):
        return True
    if extra_types and isinstance(err, extra_types):
        return True
    return isinstance(err, CHECK_ERROR_TYPES) and raised_by_our_check(err)


class UserErrorExit(SystemExit):
    """Exit with status 2 after a user error; ``str()`` is the message printed (as ``sys.exit(message)`` gives)."""

    def __init__(self, message: str) -> None:
        super().__init__(USER_ERROR_STATUS)
        self.message = message

    def __str__(self) -> str:
        return self.message


def report_user_error(prog: str, err: BaseException, debug: bool) -> str:
    """Print ``prog: error: message`` (after the traceback when debugging) to stderr; return the line."""
    if debug:
        traceback.print_exception(type(err), err, err.__traceback__)
    message = str(err.args[0]) if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    line = f'{prog}: error: {message}'
    print(line, file=sys.stderr, flush=True)
    if not debug:
        print(f'(run with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)', file=sys.stderr, flush=True)
    return line


def command(prog: str, *user_error_types: Type[BaseException], keep_debug_flag: bool = False) -> Callable[[F], F]:
    """Decorate a console command's ``main``: user errors print one line and exit with status 2.

    Args:
        prog: The command's name, printed before the message.
        user_error_types: More exception types that this command raises for user errors.
        keep_debug_flag: Leave ``--debug`` on the command line (BasicSR's train/test parse it
            themselves); otherwise it is taken off before ``main`` parses its arguments.
    """

    def decorate(main: F) -> F:

        @functools.wraps(main)
        def wrapper(*args, **kwargs):
            explicit_argv = bool(args) and isinstance(args[0], (list, tuple))  # main(argv) called directly
            debug = debug_requested(args[0] if explicit_argv else None)
            if debug and not keep_debug_flag:
                if explicit_argv:
                    args = ([a for a in args[0] if a != DEBUG_FLAG], *args[1:])
                else:
                    sys.argv = [a for a in sys.argv if a != DEBUG_FLAG]
            try:
                return main(*args, **kwargs)
            except SystemExit as exit_:
                if not isinstance(exit_.code, str):
                    raise
                # the command reported its own error (``sys.exit('...: error: ...')``)
                if debug and exit_.__context__ is not None:
                    cause = exit_.__context__
                    traceback.print_exception(type(cause), cause, cause.__traceback__)
                print(exit_.code, file=sys.stderr, flush=True)
                raise UserErrorExit(exit_.code) from None
            except Exception as err:  # noqa: B902  (sorted into user errors and bugs below)
                if not is_user_error(err, user_error_types):
                    raise
                raise UserErrorExit(report_user_error(prog, err, debug)) from None

        return wrapper  # type: ignore[return-value]

    return decorate
