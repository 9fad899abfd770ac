"""The `llama-server` binary: built once per machine from the llama.cpp that a pinned
`llama-cpp-python` source distribution vendors.

Why build: no distribution packages llama.cpp's server, and llama-cpp-python's own server does not
return `tool_calls` for small models, which agents need. The build is portable (no -march=native),
static, without network features or web UI, and cached under the cache directory keyed by the
llama-cpp-python version. It is staged in a temporary directory and published with one rename."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ._proc import Progress, pip_download, quiet, run_logged, tail
from .cache import STAGING_PREFIX, cache_dir, locked, remove_stale
from .errors import LocalModelError

__all__ = [
    "BINARY_NAME",
    "LLAMA_CPP_PYTHON_VERSION",
    "Toolchain",
    "binary_path",
    "build_jobs",
    "cached_binary",
    "ensure_binary",
    "ensure_toolchain",
    "find_toolchain",
]

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BINARY_NAME = "llama-server"
ENV_BUILD_JOBS = "RUNPLANE_BUILD_JOBS"
ENV_INSTALL_BUILD_TOOLS = "RUNPLANE_INSTALL_BUILD_TOOLS"
APT_PACKAGES = ("build-essential", "cmake")
_APT_HINT = "On Debian or Ubuntu: `sudo apt-get install build-essential cmake`."

CMAKE_OPTIONS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained file: only libc, libstdc++, libgomp
    "-DGGML_NATIVE=OFF",  # a cached binary must run on another CPU of the same architecture
    "-DGGML_CCACHE=OFF",
    "-DLLAMA_OPENSSL=OFF",  # it serves 127.0.0.1 and never downloads anything itself
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # otherwise the build fetches web UI assets from the internet
)

# make prints "[ 42%] Building CXX object ...", ninja "[12/140] Building CXX object ...".
_BUILD_PROGRESS = re.compile(r"^\[\s*\d+(%|/\d+)\]")


@dataclass(frozen=True)
class Toolchain:
    """The programs the build needs, as found on PATH."""

    cmake: str
    cc: str
    cxx: str


def _which(names: tuple[str, ...], path: str | None) -> str | None:
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def _found(env: Mapping[str, str]) -> tuple[Toolchain | None, list[str]]:
    """The toolchain on PATH, or None and what is missing."""
    path = env.get("PATH", os.defpath)
    cmake = _which(("cmake",), path)
    cc = _which((env["CC"],) if env.get("CC") else ("cc", "gcc", "clang"), path)
    cxx = _which((env["CXX"],) if env.get("CXX") else ("c++", "g++", "clang++"), path)
    tool = "ninja" if "ninja" in env.get("CMAKE_GENERATOR", "").lower() else "make"
    missing = [
        what
        for what, found in (
            ("cmake", cmake),
            (tool, _which((tool,), path)),
            ("a C compiler (cc, gcc or clang)", cc),
            ("a C++ compiler (c++, g++ or clang++)", cxx),
        )
        if found is None
    ]
    if missing or cmake is None or cc is None or cxx is None:
        return None, missing
    return Toolchain(cmake=cmake, cc=cc, cxx=cxx), []


def find_toolchain(environ: Mapping[str, str] | None = None) -> Toolchain:
    """cmake, the build tool it generates for (make, or ninja with CMAKE_GENERATOR=Ninja) and a
    C and a C++ compiler (honouring CC and CXX), or one error naming all that is missing, checked
    before anything is downloaded."""
    toolchain, missing = _found(os.environ if environ is None else environ)
    if toolchain is None:
        raise LocalModelError(
            f"Cannot build {BINARY_NAME}: {', '.join(missing)} not found on PATH. "
            f"{_APT_HINT} Then run `runplane model fetch` again."
        )
    return toolchain


def ensure_toolchain(
    environ: Mapping[str, str] | None = None,
    *,
    progress: Progress = quiet,
    is_root: bool | None = None,
) -> Toolchain:
    """The toolchain; where it is missing on a Debian or Ubuntu machine run as root (a fresh
    container, CI), first installs build-essential and cmake with apt-get, saying so.

    A fresh machine with only Python can then run the demo with one command. Set
    RUNPLANE_INSTALL_BUILD_TOOLS=0 to be told what is missing instead.
    """
    env = os.environ if environ is None else environ
    toolchain, missing = _found(env)
    if toolchain is not None:
        return toolchain
    root = is_root if is_root is not None else hasattr(os, "geteuid") and os.geteuid() == 0
    apt = shutil.which("apt-get", path=env.get("PATH", os.defpath))
    if root and apt is not None and env.get(ENV_INSTALL_BUILD_TOOLS, "1") != "0":
        progress(
            f"{BINARY_NAME}: {', '.join(missing)} not found; installing "
            f"{' and '.join(APT_PACKAGES)} with apt-get (about a minute; "
            f"{ENV_INSTALL_BUILD_TOOLS}=0 skips this)"
        )
        for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", *APT_PACKAGES]):
            done = subprocess.run(
                command,
                env={**env, "DEBIAN_FRONTEND": "noninteractive"},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                output = (done.stdout + done.stderr).strip().splitlines()[-10:]
                raise LocalModelError(
                    f"`{' '.join(command)}` failed (exit {done.returncode}):\n"
                    + "\n".join(output)
                    + f"\n{_APT_HINT} Then run `runplane model fetch` again."
                )
    return find_toolchain(env)


def build_jobs(environ: Mapping[str, str] | None = None) -> int:
    """Parallel compile jobs: RUNPLANE_BUILD_JOBS, else the CPU count capped at 2 so a build does
    not starve the machine (one compile of llama.cpp's server needs about 1 GB per job)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_BUILD_JOBS, "").strip()
    if raw:
        try:
            jobs = int(raw)
        except ValueError:
            raise LocalModelError(f"{ENV_BUILD_JOBS}={raw!r} is not a whole number.") from None
        return max(1, jobs)
    return max(1, min(2, os.cpu_count() or 1))


def _root(cache: Path | None) -> Path:
    return (cache or cache_dir()) / "llama-server"


def _final_dir(cache: Path | None) -> Path:
    return _root(cache) / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"


def binary_path(cache: Path | None = None) -> Path:
    """Where the binary for the pinned version lives once built (it may not exist yet)."""
    return _final_dir(cache) / "bin" / BINARY_NAME


def cached_binary(cache: Path | None = None) -> Path | None:
    """The built binary, if this machine has one. The directory appears only by rename after a
    successful build, so its presence means the build finished."""
    path = binary_path(cache)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def ensure_binary(
    *,
    cache: Path | None = None,
    progress: Progress = quiet,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The cached binary, building it first if needed (minutes, once per machine)."""
    found = cached_binary(cache)
    if found is not None:
        progress(f"{BINARY_NAME}: cached at {found}")
        return found
    toolchain = ensure_toolchain(environ, progress=progress)
    root = _root(cache)

    def waiting() -> None:
        progress(f"{BINARY_NAME}: another process is building it; waiting for it to finish")

    with locked(root, on_wait=waiting):
        found = cached_binary(cache)
        if found is not None:  # built by the process we waited for
            progress(f"{BINARY_NAME}: cached at {found}")
            return found
        remove_stale(root)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        try:
            return _build(staging, toolchain, cache, progress, environ)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _build(
    staging: Path,
    toolchain: Toolchain,
    cache: Path | None,
    progress: Progress,
    environ: Mapping[str, str] | None,
) -> Path:
    log = staging / "build.log"
    started = time.monotonic()
    progress(
        f"{BINARY_NAME}: not built yet; building it from llama-cpp-python "
        f"{LLAMA_CPP_PYTHON_VERSION} (once per machine, several minutes)"
    )
    progress(f"{BINARY_NAME}: [1/4] downloading the llama-cpp-python source distribution")
    files = pip_download(
        [f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
        staging / "download",
        log=log,
        progress=progress,
        options=("--no-binary", ":all:"),
    )
    sdists = [f for f in files if f.name.endswith(".tar.gz")]
    if len(sdists) != 1:
        raise LocalModelError(
            f"pip did not produce one llama-cpp-python source archive (got "
            f"{[f.name for f in files]}); try again, or report it with the log {log}."
        )

    progress(f"{BINARY_NAME}: [2/4] unpacking llama.cpp")
    source = _extract_llama_cpp(sdists[0], staging / "src")
    shutil.rmtree(staging / "download", ignore_errors=True)

    env = dict(os.environ if environ is None else environ)
    jobs = build_jobs(env)
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(jobs)
    build_dir = staging / "build"
    progress(f"{BINARY_NAME}: [3/4] configuring with cmake")
    configure = [
        toolchain.cmake,
        "-S",
        str(source),
        "-B",
        str(build_dir),
        *CMAKE_OPTIONS,
        f"-DCMAKE_C_COMPILER={toolchain.cc}",
        f"-DCMAKE_CXX_COMPILER={toolchain.cxx}",
    ]
    if run_logged(configure, log=log, progress=progress, env=env) != 0:
        _fail("cmake could not configure llama.cpp", log, cache)

    progress(f"{BINARY_NAME}: [4/4] compiling with {jobs} job(s); progress follows")
    compile_cmd = [
        toolchain.cmake,
        "--build",
        str(build_dir),
        "--target",
        BINARY_NAME,
        "--config",
        "Release",
        "--parallel",
        str(jobs),
    ]
    status = run_logged(
        compile_cmd,
        log=log,
        progress=progress,
        echo=lambda line: bool(_BUILD_PROGRESS.match(line)),
        heartbeat="  still building ({elapsed} s)",
        env=env,
    )
    if status != 0:
        _fail(f"compiling {BINARY_NAME} failed (exit status {status})", log, cache)
    built = next((p for p in build_dir.rglob(BINARY_NAME) if p.is_file()), None)
    if built is None:
        _fail(f"the build finished but produced no {BINARY_NAME}", log, cache)
    version = _check_runs(built, log, cache)

    publish = staging / "publish"
    (publish / "bin").mkdir(parents=True)
    shutil.copy2(built, publish / "bin" / BINARY_NAME)
    info = {
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
        "version": version,
        "cmake_options": list(CMAKE_OPTIONS),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (publish / "build.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    final = _final_dir(cache)
    os.rename(publish, final)  # atomic: the binary appears complete or not at all
    path = binary_path(cache)
    progress(f"{BINARY_NAME}: built in {time.monotonic() - started:.0f} s, cached at {path}")
    return path


def _extract_llama_cpp(archive: Path, dest: Path) -> Path:
    """Unpack only `vendor/llama.cpp` (no `.git`), refusing paths that escape `dest`."""
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or "/.git/" in member.name:
                continue
            target = (root / member.name).resolve()
            if not target.is_relative_to(root) or member.issym() or member.islnk():
                continue
            members.append(member)
        if not members:
            raise LocalModelError(
                f"{archive.name} does not contain {prefix}; the pinned llama-cpp-python "
                f"{LLAMA_CPP_PYTHON_VERSION} source archive looks different than expected."
            )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python builds without extraction filters
            tar.extractall(dest, members=members)
    return dest / prefix.rstrip("/")


def _check_runs(binary: Path, log: Path, cache: Path | None) -> str:
    """Run `--version` so a binary that cannot start on this machine is never cached."""
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _fail(f"the freshly built {BINARY_NAME} does not run ({exc})", log, cache)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        with open(log, "a", encoding="utf-8") as sink:
            sink.write(output + "\n")
        _fail(f"the freshly built {BINARY_NAME} fails to run", log, cache)
    return next((ln for ln in output.splitlines() if "version" in ln), output[:200])


def _fail(what: str, log: Path, cache: Path | None) -> NoReturn:
    """Keep the log (the staging directory is deleted) and raise with its tail."""
    kept = _root(cache) / "last-build.log"
    try:
        shutil.copyfile(log, kept)
    except OSError:
        kept = log
    raise LocalModelError(
        f"Building {BINARY_NAME} failed: {what}. Nothing was cached. Full log: {kept}. "
        f"Last lines:\n{tail(kept)}\nIf a compiler or cmake is missing or too old: {_APT_HINT}"
    )
