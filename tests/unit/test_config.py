"""Settings come from the environment once, with offline defaults and clear errors."""

import pytest

from chatapp.config import ConfigError, Settings
from chatapp.llm.demo_backend import DEMO_MODEL


def test_no_environment_means_the_offline_demo_model():
    settings = Settings.from_env({})
    assert settings.backend == "demo"
    assert settings.model == DEMO_MODEL


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_a_key_or_a_base_url_selects_the_openai_backend(variable):
    assert Settings.from_env({variable: "x"}).backend == "openai"


def test_backend_can_be_forced():
    assert Settings.from_env({"OPENAI_API_KEY": "k", "CHATAPP_BACKEND": "demo"}).backend == "demo"


def test_api_key_is_not_in_the_settings_repr():
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-secret-value"})
    assert "sk-secret-value" not in repr(settings)


def test_models_list_gives_the_default_model():
    settings = Settings.from_env({"OPENAI_API_KEY": "k", "CHATAPP_MODELS": "a, b"})
    assert settings.models == ("a", "b")
    assert settings.model == "a"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHATAPP_BACKEND": "nope"}, "CHATAPP_BACKEND"),
        ({"CHATAPP_HEARTBEAT_S": "soon"}, "CHATAPP_HEARTBEAT_S must be a float"),
        ({"CHATAPP_MAX_MESSAGES": "0"}, "CHATAPP_MAX_MESSAGES must be greater than 0"),
        ({"CHATAPP_UPSTREAM_MAX_RETRIES": "-1"}, "CHATAPP_UPSTREAM_MAX_RETRIES must be 0 or more"),
        ({"CHATAPP_MODELS": "a,b", "CHATAPP_MODEL": "c"}, "not in CHATAPP_MODELS"),
        ({"CHATAPP_LOG_LEVEL": "loud"}, "CHATAPP_LOG_LEVEL must be one of"),
        ({"CHATAPP_RATE_LIMIT": "lots"}, "CHATAPP_RATE_LIMIT must look like"),
        ({"CHATAPP_RATELIMIT_STORAGE_URI": "ftp://x"}, "CHATAPP_RATELIMIT_STORAGE_URI must be"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be"),
        ({"CHATAPP_CHECKPOINT_S": "0"}, "CHATAPP_CHECKPOINT_S must be greater than 0"),
        ({"CHATAPP_MAX_UPSTREAM_LINE_BYTES": "4MiB"}, "CHATAPP_MAX_UPSTREAM_LINE_BYTES must be a int"),
        (
            {"CHATAPP_MAX_UPSTREAM_LINE_BYTES": "1000"},
            "CHATAPP_MAX_UPSTREAM_LINE_BYTES must be at least 4096",
        ),
        ({"CHATAPP_MAX_DELTA_CHARS": "-1"}, "CHATAPP_MAX_DELTA_CHARS must be greater than 0"),
        ({"CHATAPP_MAX_DELTA_CHARS": "100"}, "CHATAPP_MAX_DELTA_CHARS must be at least 1024"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_a_database_password_is_not_in_the_settings_repr_nor_in_the_error():
    url = "postgresql+psycopg://chat:hunter2@db:5432/chat"
    assert "hunter2" not in repr(Settings.from_env({"DATABASE_URL": url}))
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"DATABASE_URL": url.replace("postgresql", "oracle")})
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("value", ["30/minute", "10/minute;200/day", ""])
def test_rate_limits_in_flask_limiter_notation_are_accepted(value):
    assert Settings.from_env({"CHATAPP_RATE_LIMIT": value}).rate_limit == value


def test_the_upstream_limits_default_to_4_mib_lines_and_1m_character_deltas():
    settings = Settings.from_env({})
    assert (settings.max_upstream_line_bytes, settings.max_delta_chars) == (4 * 1024 * 1024, 1024 * 1024)
    custom = Settings.from_env(
        {"CHATAPP_MAX_UPSTREAM_LINE_BYTES": "65536", "CHATAPP_MAX_DELTA_CHARS": "2048"}
    )
    assert (custom.max_upstream_line_bytes, custom.max_delta_chars) == (65536, 2048)


def test_zero_retries_is_allowed():
    assert Settings.from_env({"CHATAPP_UPSTREAM_MAX_RETRIES": "0"}).upstream_max_retries == 0


def unset(monkeypatch, *names):
    """Take variables out of the environment, so that a value the code under test puts there is
    undone after the test too (`monkeypatch.delenv` records nothing for a variable that was not set)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_a_dotenv_file_is_honoured_without_overriding_the_environment(tmp_path, monkeypatch):
    """Loading `.env` writes CHATAPP_MODEL into the process environment: monkeypatch undoes it, so
    later tests (and the servers they start) do not inherit it."""
    (tmp_path / ".env").write_text("CHATAPP_MODEL=from-dotenv\nCHATAPP_HEARTBEAT_S=5\n")
    monkeypatch.chdir(tmp_path)
    unset(
        monkeypatch, "CHATAPP_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CHATAPP_BACKEND", "CHATAPP_MODELS"
    )
    monkeypatch.setenv("CHATAPP_HEARTBEAT_S", "7")
    settings = Settings.from_env()
    assert settings.model == "from-dotenv"
    assert settings.heartbeat_s == 7.0
