"""Real installed distributions, made on the fly: `.dist-info` metadata plus modules on sys.path.

The registry finds plugins through `importlib.metadata`, so its tests install real metadata rather
than mocking the lookup: what passes here is what happens for a pip-installed plugin.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path


def make_dist(
    root: Path,
    name: str,
    *,
    version: str = "1.0.0",
    entry_points: dict[str, str],
    modules: dict[str, str],
    group: str = "runplane",
) -> Path:
    """Write distribution `name` under `root`; put `root` on sys.path to install it."""
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(exist_ok=False)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()
    return root


def forget_modules(*names: str) -> None:
    for name in names:
        sys.modules.pop(name, None)
