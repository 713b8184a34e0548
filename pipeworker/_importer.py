"""Loading an app from an import string: ``package.module:attribute`` or ``path/file.py:attribute``.

The one distinction that matters to a user is *whose* import failed. A module that cannot be found
is a typo or a missing ``sys.path`` entry, and needs no traceback; an ImportError raised while the
user's module runs (a dependency missing, a circular import) is a bug in their code, and its
traceback is the only useful thing to show. :class:`ModuleNotFoundError` carries the name of the
module that was missing, so the two are told apart by comparing it with the module asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["AppLoadError", "LoadedApp", "describe", "import_from_string", "user_traceback"]


class AppLoadError(Exception):
    """The app could not be loaded; the message says what to fix.

    Attributes:
        details: a traceback to show after the message when the error came from the user's own
            code (an exception while importing their module or calling their factory), else None.
    """

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


class LoadedApp:
    """What an import string named: the object, and the module it was found in."""

    __slots__ = ("module", "obj", "spec")

    def __init__(self, spec: str, module: ModuleType, obj: Any) -> None:
        self.spec = spec
        self.module = module
        self.obj = obj


def user_traceback(exc: BaseException) -> str:
    """Format *exc*'s traceback from the first frame of the user's own code, without the message.

    The caller's error line says the exception and its message, once.
    """
    # Drop pipeworker's and importlib's frames above the user's code: they explain nothing.
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and _is_machinery(frames[0].filename):
        frames.pop(0)
    from pipeworker.exceptions import PipeworkerError

    if isinstance(exc, PipeworkerError):
        # pipeworker refused something the user's line asked for (a bad worker group, a bad
        # setting): that line is the place to fix, not the frames where the check lives.
        while len(frames) > 1 and _in_pipeworker(frames[-1].filename):
            frames.pop()
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join(lines)


def _in_pipeworker(filename: str) -> bool:
    package = os.path.dirname(os.path.abspath(__file__))
    return os.path.abspath(filename).startswith(package + os.sep)


def _is_machinery(filename: str) -> bool:
    here = os.path.dirname(os.path.abspath(__file__))
    return (
        filename.startswith("<frozen importlib")
        or os.sep + "importlib" + os.sep in filename
        or os.path.dirname(os.path.abspath(filename)) == here
    )


def _is_the_missing_module(missing: str | None, wanted: str) -> bool:
    # `a.b.c` is "not found" when `a`, `a.b` or `a.b.c` itself is what could not be found.
    if not missing:
        return False
    return wanted == missing or wanted.startswith(missing + ".")


def _import_path(path_text: str) -> ModuleType:
    path = Path(path_text)
    if not path.is_file():
        raise AppLoadError(
            f"could not find the file {path_text!r} (looked in {os.getcwd()}); "
            "check the path, or use a module name such as 'package.module:worker'"
        )
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover (a .py file always has one)
        raise AppLoadError(f"{path_text!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    # The file's own directory first, as `python path/file.py` would have it, so sibling
    # modules import; registered before running so dataclasses and pickling can find it.
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise AppLoadError(
            f"importing {path_text!r} raised {type(exc).__name__}: {exc}",
            details=user_traceback(exc),
        ) from exc
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if _is_the_missing_module(exc.name, name):
            where = (
                f"module {name!r}"
                if exc.name == name
                else (f"module {exc.name!r} (the package of {name!r})")
            )
            raise AppLoadError(
                f"could not find {where}; run from the directory that contains it "
                f"(current directory: {os.getcwd()}), install it, or give a file path "
                f"such as 'path/to/app.py:worker'"
            ) from exc
        raise AppLoadError(
            f"importing {name!r} failed: {exc}; the module exists but something it imports "
            "is missing",
            details=user_traceback(exc),
        ) from exc
    except Exception as exc:
        raise AppLoadError(
            f"importing {name!r} raised {type(exc).__name__}: {exc}",
            details=user_traceback(exc),
        ) from exc


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, ModuleType):
        return f"the module {obj.__name__}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"the function {obj.__qualname__}()"
    kind = type(obj).__name__
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a {kind} ({text})"


def import_from_string(spec: str) -> LoadedApp:
    """Import the module named by *spec* and return the attribute it names.

    *spec* is ``module:attribute`` (``examples.hello:worker``, the attribute may be dotted) or
    ``path/to/file.py:attribute``. The current directory is put first on ``sys.path``, as
    ``python -m`` does, so a module next to the command imports.

    Raises:
        AppLoadError: the string is malformed, the module or attribute does not exist, or the
            module raised while importing (then ``details`` holds its traceback).
    """
    module_text, sep, attr_text = spec.rpartition(":")
    # rpartition keeps Windows drive letters (C:\...) in the module part.
    if not sep or not module_text or not attr_text:
        raise AppLoadError(
            f"{spec!r} is not an import string: use 'module:attribute', "
            "for example 'examples.hello:worker' or 'app.py:worker'"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if module_text.endswith(".py") or "/" in module_text or os.sep in module_text:
        module = _import_path(module_text)
    else:
        module = _import_module(module_text)

    obj: Any = module
    for part in attr_text.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"{module_text} has no attribute {attr_text!r}{_hint_workers(module)}"
            ) from None
    return LoadedApp(spec, module, obj)


def _hint_workers(module: ModuleType) -> str:
    from pipeworker.worker import Worker

    names = sorted(name for name, value in vars(module).items() if isinstance(value, Worker))
    if names:
        return f"; the Workers it defines: {', '.join(names)}"
    return ""


def describe(obj: Any) -> str:
    """Say what *obj* is, for messages such as "… is the function build(), not a Worker"."""
    return _describe(obj)
