"""RUNPLANE_OPENAI_* parsing and validation, and that the API key never shows in a repr.

These settings are the only knob of the direct backend, typed by hand into shells and CI files, so
every spelling a user might reasonably type must work and everything else must fail with a message
that names the variable and says what to put there instead.
"""

from __future__ import annotations

import pytest
from agents.exceptions import UserError
from hypothesis import example, given
from hypothesis import strategies as st
from runplane_openai import OpenAIBackend, OpenAISettings, SettingsError
from runplane_openai.settings import ENV_API, ENV_API_KEY, ENV_BASE_URL

API_NAMES = ("responses", "chat_completions")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_API, ENV_API_KEY, ENV_BASE_URL):
        monkeypatch.delenv(name, raising=False)


# -- from_env ----------------------------------------------------------------------------------


def test_nothing_set_means_the_sdk_defaults() -> None:
    settings = OpenAISettings.from_env({})
    assert settings == OpenAISettings()
    assert not settings.configured
    assert not settings.uses_chat_completions


def test_from_env_reads_all_three_variables() -> None:
    settings = OpenAISettings.from_env(
        {
            ENV_BASE_URL: "http://127.0.0.1:11434/v1",
            ENV_API_KEY: "sk-local",
            ENV_API: "chat_completions",
            "OPENAI_API_KEY": "not ours",
        }
    )
    assert settings == OpenAISettings(
        base_url="http://127.0.0.1:11434/v1", api_key="sk-local", api="chat_completions"
    )
    assert settings.configured
    assert settings.uses_chat_completions


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BASE_URL, "https://llm.example/v1")
    monkeypatch.setenv(ENV_API, "Responses")
    assert OpenAISettings.from_env() == OpenAISettings(
        base_url="https://llm.example/v1", api="responses"
    )
    assert OpenAIBackend().settings == OpenAISettings.from_env()


@pytest.mark.parametrize(
    ("raw", "api"),
    [
        ("responses", "responses"),
        ("RESPONSES", "responses"),
        (" Responses\n", "responses"),
        ("chat_completions", "chat_completions"),
        ("chat-completions", "chat_completions"),
        ("Chat-Completions", "chat_completions"),
        ("\tCHAT_COMPLETIONS ", "chat_completions"),
    ],
)
def test_api_spellings(raw: str, api: str) -> None:
    assert OpenAISettings.from_env({ENV_API: raw}).api == api


@pytest.mark.parametrize("name", [ENV_BASE_URL, ENV_API_KEY, ENV_API])
def test_an_empty_variable_means_unset(name: str) -> None:
    """`export RUNPLANE_OPENAI_API=` (or a CI template with no value) must not half-configure."""
    settings = OpenAISettings.from_env({name: ""})
    assert settings == OpenAISettings()
    assert not settings.configured


def test_a_blank_api_means_unset() -> None:
    assert OpenAISettings.from_env({ENV_API: "   "}).api is None


@given(
    base_url=st.one_of(st.none(), st.just(""), st.just("http://127.0.0.1:8080/v1")),
    api_key=st.one_of(st.none(), st.just(""), st.text(min_size=1)),
    api=st.one_of(st.none(), st.just(""), st.sampled_from(API_NAMES)),
)
def test_configured_means_some_variable_has_a_value(
    base_url: str | None, api_key: str | None, api: str | None
) -> None:
    env = {
        name: value
        for name, value in ((ENV_BASE_URL, base_url), (ENV_API_KEY, api_key), (ENV_API, api))
        if value is not None
    }
    assert OpenAISettings.from_env(env).configured == any(env.values())


# -- invalid values ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["graphql", "completions", "chat", "response", "websocket"])
def test_an_unknown_api_names_the_variable_and_the_choices(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        OpenAISettings.from_env({ENV_API: raw})
    message = str(caught.value)
    assert ENV_API in message
    assert repr(raw) in message
    assert "'responses'" in message
    assert "'chat_completions'" in message


@pytest.mark.parametrize(
    "raw", ["127.0.0.1:8080/v1", "localhost", "ftp://example.com/v1", "ws://127.0.0.1/v1", " "]
)
def test_a_non_http_base_url_names_the_variable_and_shows_an_example(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        OpenAISettings.from_env({ENV_BASE_URL: raw})
    message = str(caught.value)
    assert ENV_BASE_URL in message
    assert repr(raw) in message
    assert "http(s) URL" in message
    assert "for example http://127.0.0.1:8080/v1" in message


def test_constructing_settings_validates_too() -> None:
    """Code that builds OpenAISettings directly gets the same checks as the environment."""
    with pytest.raises(SettingsError, match=ENV_API):
        OpenAISettings(api="chat")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=ENV_BASE_URL):
        OpenAISettings(base_url="localhost:8080")


def test_settings_errors_are_the_sdks_user_errors() -> None:
    """Callers that already handle `agents.exceptions.UserError` handle these too."""
    assert issubclass(SettingsError, UserError)


@given(st.text())
@example("Chat-Completions")
@example("RESPONSES ")
@example("chat completions")
@example("responses_")
def test_any_api_value_parses_to_an_api_or_raises_settings_error(raw: str) -> None:
    """Never another exception type, and never a value the provider would not understand."""
    try:
        api = OpenAISettings.from_env({ENV_API: raw}).api
    except SettingsError:
        assert raw.strip().lower().replace("-", "_") not in ("", *API_NAMES)
        return
    assert api in API_NAMES or (api is None and not raw.strip())


@st.composite
def spellings(draw: st.DrawFn) -> tuple[str, str]:
    """A valid API name in any case, with dashes for any underscores, padded with whitespace."""
    api = draw(st.sampled_from(API_NAMES))
    chars = [
        draw(st.sampled_from(["_", "-"])) if c == "_" else draw(st.sampled_from([c, c.upper()]))
        for c in api
    ]
    pad = st.text(alphabet=" \t\n\r", max_size=3)
    return draw(pad) + "".join(chars) + draw(pad), api


@given(spellings())
def test_every_reasonable_spelling_of_an_api_parses(spelled: tuple[str, str]) -> None:
    raw, api = spelled
    assert OpenAISettings.from_env({ENV_API: raw}).api == api


@given(st.text(min_size=1))
@example("https://api.example.com/v1")
@example("http://")
@example("HTTP://127.0.0.1/v1")
def test_any_base_url_is_kept_verbatim_or_refused(raw: str) -> None:
    try:
        settings = OpenAISettings.from_env({ENV_BASE_URL: raw})
    except SettingsError:
        assert not raw.startswith(("http://", "https://"))
        return
    assert settings.base_url == raw
    assert raw.startswith(("http://", "https://"))


@given(st.text(min_size=1))
def test_any_api_key_is_kept_verbatim(raw: str) -> None:
    assert OpenAISettings.from_env({ENV_API_KEY: raw}).api_key == raw


# -- secrets ------------------------------------------------------------------------------------


def test_the_backend_repr_does_not_leak_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_API_KEY, "sk-proj-SECRET-0123456789")
    monkeypatch.setenv(ENV_BASE_URL, "http://127.0.0.1:8080/v1")
    backend = OpenAIBackend()
    assert "SECRET" not in repr(backend)
    assert repr(backend) == (
        "OpenAIBackend(OpenAISettings(base_url='http://127.0.0.1:8080/v1', api_key='***', "
        "api=None))"
    )


@given(
    key=st.text(min_size=1),
    base_url=st.sampled_from([None, "http://127.0.0.1:8080/v1"]),
    api=st.sampled_from([None, *API_NAMES]),
)
@example(key="***", base_url=None, api=None)
@example(key="None", base_url=None, api="responses")
@example(key="responses", base_url=None, api="responses")
@example(key="http://127.0.0.1:8080/v1", base_url="http://127.0.0.1:8080/v1", api=None)
def test_no_repr_depends_on_the_key(key: str, base_url: str | None, api: str | None) -> None:
    """Whatever the key is, the reprs are exactly those of any other key: nothing can leak."""
    settings = OpenAISettings(base_url=base_url, api_key=key, api=api)  # type: ignore[arg-type]
    other = OpenAISettings(base_url=base_url, api_key="placeholder", api=api)  # type: ignore[arg-type]
    assert repr(settings) == repr(other)
    assert str(settings) == str(other)
    assert repr(OpenAIBackend(settings)) == repr(OpenAIBackend(other))
    assert f"base_url={base_url!r}" in repr(settings)
    assert f"api={api!r}" in repr(settings)


def test_repr_says_whether_a_key_is_set() -> None:
    assert "api_key=None" in repr(OpenAISettings())
    assert "api_key='***'" in repr(OpenAISettings(api_key="k"))


def test_keyless_local_endpoint_gets_a_placeholder_key() -> None:
    """A base URL with no key anywhere must not fail with the openai client's missing key."""
    local = OpenAISettings(base_url="http://127.0.0.1:8080/v1")
    assert local.effective_api_key({}) == "runplane-no-key"
    assert local.effective_api_key({"OPENAI_API_KEY": "sk-env"}) is None  # the SDK uses it
    keyed = OpenAISettings(base_url="http://127.0.0.1:8080/v1", api_key="sk-mine")
    assert keyed.effective_api_key({}) == "sk-mine"
    assert OpenAISettings(api="chat_completions").effective_api_key({}) is None
