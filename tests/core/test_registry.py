"""Plugin discovery through real entry points, and every way it can go wrong, loudly."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.backends import BackendPlugin, RecordingBackend
from support.dists import forget_modules, make_dist

import runplane
from runplane import (
    BackendConflictError,
    BackendFactoryError,
    BrokenPluginWarning,
    PluginLoadError,
    Registry,
    UnknownBackendError,
)

GROUP = "runplane_test_registry"

GOOD_PLUGIN = """
import runplane

CREATED = []

class Backend:
    async def run(self, starting_agent, input, **kw): ...
    def run_sync(self, starting_agent, input, **kw): ...
    def run_streamed(self, starting_agent, input, **kw): ...

def make():
    CREATED.append(1)
    return Backend()

@runplane.hookimpl
def runplane_backends():
    return {"{name}": make}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    forget_modules("good_plugin", "other_plugin", "broken_plugin", "typo_plugin", "bad_hook")


def _good(site: Path, dist: str, module: str, backend: str) -> None:
    make_dist(
        site,
        dist,
        entry_points={backend: module},
        modules={module: GOOD_PLUGIN.replace("{name}", backend)},
        group=GROUP,
    )


def test_entry_point_backend_is_listed_with_its_distribution(site: Path) -> None:
    _good(site, "acme-runplane", "good_plugin", "acme")
    entries = Registry(GROUP).backends()
    assert set(entries) == {"acme"}
    assert entries["acme"].distribution == "acme-runplane"
    assert entries["acme"].version == "1.0.0"
    assert entries["acme"].plugin == "acme"


def test_factory_is_lazy_and_called_once(site: Path) -> None:
    _good(site, "acme-runplane", "good_plugin", "acme")
    registry = Registry(GROUP)
    registry.backends()
    import good_plugin  # type: ignore[import-not-found]

    assert good_plugin.CREATED == []
    first = registry.get("acme")
    assert registry.get("acme") is first
    assert good_plugin.CREATED == [1]


def test_plugin_that_fails_to_import_names_distribution_entry_point_and_cause(site: Path) -> None:
    make_dist(
        site,
        "broken-runplane",
        entry_points={"broken": "broken_plugin"},
        modules={"broken_plugin": "import no_such_module_xyz\n"},
        group=GROUP,
    )
    registry = Registry(GROUP)
    with pytest.warns(BrokenPluginWarning, match="broken-runplane"):
        assert registry.backends() == {}
    with pytest.raises(PluginLoadError) as info:
        registry.get("broken")  # its backend, asked for by its entry-point name
    message = str(info.value)
    assert "broken-runplane" in message
    assert "broken = broken_plugin" in message
    assert "no_such_module_xyz" in message
    assert "pip uninstall broken-runplane" in message
    assert isinstance(info.value.cause, ModuleNotFoundError)


def test_broken_plugin_is_reported_and_never_takes_the_others_down(site: Path) -> None:
    _good(site, "acme-runplane", "good_plugin", "acme")
    make_dist(
        site,
        "broken-runplane",
        entry_points={"broken": "broken_plugin"},
        modules={"broken_plugin": "raise RuntimeError('half-installed')\n"},
        group=GROUP,
    )
    registry = Registry(GROUP)
    with pytest.warns(BrokenPluginWarning) as warned:
        assert set(registry.backends()) == {"acme"}
    # Only ours: a warning another test left to the garbage collector may be recorded too.
    (text,) = [str(w.message) for w in warned if issubclass(w.category, BrokenPluginWarning)]
    assert "broken-runplane" in text
    assert "RuntimeError: half-installed" in text
    assert registry.get("acme") is registry.get("acme")  # the good backend works
    [broken] = registry.broken()
    assert (broken.name, broken.distribution, broken.version) == (
        "broken",
        "broken-runplane",
        "1.0.0",
    )
    assert isinstance(broken.error.cause, RuntimeError)
    # A name nobody provides: the broken plugin is named as a possible provider.
    with pytest.raises(UnknownBackendError) as unknown:
        registry.get("other")
    assert "broken-runplane" in str(unknown.value)
    assert "half-installed" in str(unknown.value)
    assert "acme (from acme-runplane)" in str(unknown.value)
    assert unknown.value.broken == (broken.error,)


def test_two_plugins_claiming_one_name_is_an_error_naming_both(site: Path) -> None:
    _good(site, "acme-runplane", "good_plugin", "shared")
    _good(site, "other-runplane", "other_plugin", "shared")
    with pytest.raises(BackendConflictError) as info:
        Registry(GROUP).backends()
    assert "acme-runplane" in str(info.value)
    assert "other-runplane" in str(info.value)
    assert "'shared'" in str(info.value)


def test_misspelled_hook_is_an_error_not_a_silent_skip(site: Path) -> None:
    _good(site, "acme-runplane", "good_plugin", "acme")
    make_dist(
        site,
        "typo-runplane",
        entry_points={"typo": "typo_plugin"},
        modules={
            "typo_plugin": """
                import runplane

                @runplane.hookimpl
                def runplane_backend():
                    return {}
            """
        },
        group=GROUP,
    )
    registry = Registry(GROUP)
    with pytest.warns(BrokenPluginWarning, match="typo-runplane.*runplane_backend"):
        assert set(registry.backends()) == {"acme"}
    with pytest.raises(PluginLoadError) as info:
        registry.get("typo")
    assert "typo-runplane" in str(info.value)
    assert "runplane_backend" in str(info.value)


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("[]", "must return a mapping"),
        ("{'': lambda: None}", "non-empty str"),
        ("{'x': 3}", "callable"),
    ],
)
def test_hook_returning_garbage_names_the_plugin(site: Path, returned: str, expected: str) -> None:
    make_dist(
        site,
        "bad-hook-runplane",
        entry_points={"bad": "bad_hook"},
        modules={
            "bad_hook": f"""
                import runplane

                @runplane.hookimpl
                def runplane_backends():
                    return {returned}
            """
        },
        group=GROUP,
    )
    registry = Registry(GROUP)
    with pytest.warns(BrokenPluginWarning, match="bad-hook-runplane"):
        assert registry.backends() == {}
    with pytest.raises(PluginLoadError, match=expected) as info:
        registry.get("bad")
    assert "bad-hook-runplane" in str(info.value)


def test_unknown_name_lists_installed_backends_and_distributions(site: Path) -> None:
    _good(site, "acme-runplane", "good_plugin", "acme")
    with pytest.raises(UnknownBackendError) as info:
        Registry(GROUP).get("nope")
    assert "'nope'" in str(info.value)
    assert "acme (from acme-runplane)" in str(info.value)
    assert info.value.installed == {"acme": "acme-runplane"}


def test_unknown_name_with_nothing_installed_says_how_to_install() -> None:
    with pytest.raises(UnknownBackendError, match="pip install runplane-openai"):
        Registry("runplane_test_registry_empty").get("openai")


def test_factory_that_raises_or_returns_a_non_backend() -> None:
    registry = Registry("runplane_test_registry_empty")

    def explode() -> RecordingBackend:
        raise RuntimeError("no credentials")

    registry.register(BackendPlugin({"boom": explode, "junk": lambda: object()}), name="p")
    with pytest.raises(BackendFactoryError, match="RuntimeError: no credentials"):
        registry.get("boom")
    with pytest.raises(BackendFactoryError, match="lacks run, run_sync or run_streamed"):
        registry.get("junk")


def test_in_process_register_and_unregister() -> None:
    registry = Registry("runplane_test_registry_empty")
    name = registry.register(BackendPlugin({"rec": RecordingBackend}), name="in-tree")
    assert registry.backends()["rec"].distribution == "<in-process>"
    backend = registry.get("rec")
    registry.unregister(name)
    with pytest.raises(UnknownBackendError):
        registry.get("rec")
    registry.register(BackendPlugin({"rec": RecordingBackend}), name="in-tree")
    assert registry.get("rec") is not backend  # no stale instance survives a re-registration
    with pytest.raises(KeyError, match="no runplane plugin named 'missing'"):
        registry.unregister("missing")


def test_installed_direct_backend_is_found_through_its_entry_point() -> None:
    entry = runplane.backends()["openai"]
    assert entry.distribution == "runplane-openai"
    from runplane_openai import OpenAIBackend

    assert isinstance(runplane.default_registry().get("openai"), OpenAIBackend)
