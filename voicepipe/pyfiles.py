"""Python files named by path in a profile (plugins, tool handlers), imported as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from voicepipe.errors import UsageError


def resolve_file(spec: str, base_dir: Path, what: str = "plugin file") -> Path:
    """The file a relative ``spec`` names: under ``base_dir``, else under the working directory."""
    candidates = [Path(spec)] if Path(spec).is_absolute() else [base_dir / spec, Path.cwd() / spec]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise UsageError(f"{what} {spec!r} not found (looked at {tried})")


def import_file(path: Path, spec: str, *, namespace: str = "voicepipe.local", reuse: bool = False) -> ModuleType:
    """Import the Python file at ``path`` as ``<namespace>.<stem>``; with ``reuse``, a module
    already imported from that file is returned as it is, like a normal import."""
    module_name = f"{namespace}.{path.stem}"
    loaded = sys.modules.get(module_name)
    if reuse and loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    import_spec = importlib.util.spec_from_file_location(module_name, path)
    assert import_spec is not None and import_spec.loader is not None
    module = importlib.util.module_from_spec(import_spec)
    sys.modules[module_name] = module
    try:
        import_spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise UsageError(f"{spec}:{exc.lineno}:{exc.offset or 0}: syntax error: {exc.msg}") from None
    except Exception as exc:
        del sys.modules[module_name]
        raise UsageError(f"{spec}: failed to import: {type(exc).__name__}: {exc}") from None
    return module
