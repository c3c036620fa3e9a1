"""``${VAR}`` and ``${VAR:-default}`` in string values, from the environment.

``$${`` writes a literal ``${``. As in the shell, the default applies when the variable is unset or
empty. An unquoted value that is exactly one reference (``port: ${PORT:-8765}``) is read again as
a YAML scalar after substitution, so it can be a number or a boolean; a quoted one stays a string.
Inside a flow mapping (``{port: ${PORT}}``) YAML itself reads ``{`` as structure: write such a
value on its own line, or quote it.

References are resolved after ``extends:`` merging, so a parent's value that the profile replaces
is never looked at, and before ``--set`` overrides, whose values are taken literally.
"""

from __future__ import annotations

import re
from typing import Mapping

from voicepipe.profile.nodes import KeyPath, Node, Problems
from voicepipe.profile.yamlload import resolve_scalar

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_WHOLE = re.compile(r"\$\{[^}]*\}")


def interpolate(node: Node, environ: Mapping[str, str], problems: Problems, path: KeyPath = ()) -> None:
    """Substitute references in every string value of the tree, in place."""
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            interpolate(child, environ, problems, path + (key,))
        return
    if isinstance(node.value, list):
        for index, child in enumerate(node.value):
            interpolate(child, environ, problems, path + (index,))
        return
    if not isinstance(node.value, str) or "${" not in node.value:
        return
    text = substitute(node.value, environ, lambda message: problems.add(node.loc, path, message, final=True))
    if text is None:
        return
    if node.raw is not None and _WHOLE.fullmatch(node.raw) and text != "":
        node.value = resolve_scalar(text)
    else:
        node.value = text


def substitute(text: str, environ: Mapping[str, str], report) -> str | None:
    """``text`` with its references replaced; ``None`` after calling ``report(message)`` for each
    reference that cannot be resolved."""
    failed = False

    def replace(match: re.Match) -> str:
        nonlocal failed
        token = match.group(0)
        if token == "$${":
            return "${"
        if match.group(1) is None:
            failed = True
            report("unterminated '${' (write '$${' for a literal '${')")
            return token
        reference = _REFERENCE.fullmatch(match.group(1))
        if reference is None:
            failed = True
            report(f"bad variable reference {token!r} (expected ${{NAME}} or ${{NAME:-default}})")
            return token
        name, default = reference.group("name"), reference.group("default")
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:
            return value  # set but empty, no default: the empty string
        failed = True
        report(f"environment variable {name} is not set (export it, or write ${{{name}:-default}})")
        return token

    result = _TOKEN.sub(replace, text)
    return None if failed else result
