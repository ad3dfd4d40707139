from pathlib import Path

import pytest

from engine.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_matches_defaults():
    settings = load_settings(REPO / "config.toml", environ={})
    assert settings.clustering.k == "auto"
    assert settings.rfm.segments[0].name == "VIP"
    # issue 16: the shipped config adds the win-back offer to the built-in two
    assert [t.offer_id for t in settings.notifications.templates] == [
        "vip-thanks", "welcome", "win-back"]
    assert settings.notifications.holdout_share == 0.10
    assert settings.outcomes.attribution_days == 14


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[clustering]\nk_min = 5\nk_max = 2\n", "clustering: k range 5..2 is empty"),
        ("[clustering]\nkk = 3\n", "clustering.kk: unknown setting"),
        ("[notifications]\nfrequency_cap_days = -1\n", "notifications.frequency_cap_days"),
        ("[dashboard]\nport = 'eighty'\n", "dashboard.port"),
        ("[database\n", "not valid TOML"),
        ('[spark]\nsource = "parquet"\n', 'spark: source = "parquet" needs parquet_path'),
        ('[engine]\nbackend = "dask"\n', "engine.backend: Input should be 'pandas' or 'spark'"),
        ("[notifications]\nholdout_share = 0.6\n", "notifications.holdout_share: Input should "
         "be less than or equal to 0.5"),
        ("[notifications]\nholdout_share = -0.1\n", "notifications.holdout_share"),
        ("[outcomes]\nattribution_days = 0\n", "outcomes.attribution_days: Input should be "
         "greater than or equal to 1"),
        ("[outcomes]\nattribution_days = 400\n", "outcomes.attribution_days"),
        ("[outcomes]\nattribution_days = 1.5\n", "outcomes.attribution_days"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, text, expected):
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(config, environ={})
    message = str(info.value)
    assert expected in message
    assert str(config) in message
    assert "\n" not in message


def test_environment_overrides_database_and_twilio():
    settings = load_settings(REPO / "config.toml", environ={
        "SEGMINT_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006",
    })
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.secrets.twilio_configured


def test_relative_sqlite_path_resolves_next_to_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///var/x.db"\n')
    settings = load_settings(config, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'x.db'}"
