"""config.toml validation: unknown or mistyped keys are named; fuzzed input fails cleanly."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config import SecretRef, parse_config, render_config
from hub.errors import ConfigError

BASE = '[hub]\nname = "maple-12"\n'


def test_rendered_config_is_accepted():
    config = parse_config(render_config("maple-12", (51.5, -0.12)))
    assert config.hub.location.lat == 51.5
    assert config.retention.max_age_days == 30.0


@pytest.mark.parametrize(
    "text, message",
    [
        (BASE + "colour = 1\n", "config.toml: hub.colour: unknown key"),
        (BASE + "[retention]\nmax_age_dayz = 3\n", "config.toml: retention.max_age_dayz: unknown key"),
        (BASE + "[retention]\nmax_age_days = \"thirty\"\n",
         "config.toml: retention.max_age_days: Input should be a valid number"),
        ('[hub]\nname = 12\n', "config.toml: hub.name: Input should be a valid string"),
        (BASE + '[retention]\nmax_bytes = "20 XB"\n',
         "config.toml: retention.max_bytes: '20 XB' is not a size"),
        (BASE + '[vault]\nextra_recipients = ["age1nope"]\n',
         "config.toml: vault.extra_recipients.0: String should match pattern"),
        (BASE + '[[cameras]]\nname = "Front Door"\ntype = "rtsp"\n',
         "config.toml: cameras.0.name: String should match pattern"),
        (BASE + '[[cameras]]\nname = "a"\ntype = "rtsp"\n[[cameras]]\nname = "a"\ntype = "rtsp"\n',
         "config.toml: cameras: camera 'a' is defined twice"),
        (BASE + '[[notifiers]]\nname = "n"\ntype = "webhook"\n[[notifiers]]\nname = "n"\n'
         'type = "webhook"\n', "config.toml: notifiers: notifier 'n' is defined twice"),
        (BASE + "[vault]\npassphrase_work_factor = 9\n",
         "config.toml: vault.passphrase_work_factor: Input should be greater than or equal to 10"),
        ("[webb]\n", "config.toml: hub: Field required; webb: unknown key"),
        ("[hub\n", "config.toml: not valid TOML"),
    ],
)
def test_bad_config_names_the_key(text, message):
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert str(err.value).startswith(message)


def test_sizes_accept_units():
    config = parse_config(BASE + '[retention]\nmax_bytes = "1.5 GiB"\n')
    assert config.retention.max_bytes == int(1.5 * 2**30)


def test_secret_refs(tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "s3cret")
    assert SecretRef(env="CAM_PASSWORD").resolve(tmp_path) == "s3cret"
    (tmp_path / "pw").write_text("from-file\n")
    assert SecretRef(file="pw").resolve(tmp_path) == "from-file"
    with pytest.raises(ConfigError, match="environment variable NOPE_NOT_SET is not set"):
        SecretRef(env="NOPE_NOT_SET").resolve(tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(env="A", file="b")


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_config_text_only_raises_config_error(text):
    try:
        parse_config(text)
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["hub", "vault", "retention", "web", "cameras", "x"]),
                       toml_values, max_size=5))
def test_fuzz_config_structure_only_raises_config_error(raw):
    from pydantic import ValidationError

    from hub.config import Config, describe

    try:
        Config.model_validate(raw)
    except ValidationError as err:
        assert describe(err, "config.toml").startswith("config.toml: ")


def test_toml_errors_are_not_swallowed():
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads("[")
