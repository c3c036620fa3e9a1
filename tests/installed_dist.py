"""A distribution installed the way pip leaves one (a ``.dist-info`` folder next to its modules),
found by ``importlib.metadata`` like any other once its folder is on ``sys.path``."""

from __future__ import annotations

from pathlib import Path


def install_distribution(site: Path, name: str, version: str, entry_points: str, modules: dict[str, str]) -> Path:
    """Write distribution ``name`` ``version`` into ``site``: ``entry_points`` is the text of its
    ``entry_points.txt``, ``modules`` maps module names to their source. Put ``site`` on
    ``sys.path`` (``monkeypatch.syspath_prepend``) to install it."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    return site
