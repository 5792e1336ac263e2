"""Operating a gateway: init, invite, block, settings, and the python -m entry point."""

from __future__ import annotations

import logging
import stat

import pytest

from federation.errors import KeyInvalid
from federation.gateway.errors import GatewayError, GatewayExists
from federation.gateway.operator import (
    block_hub,
    create_invite,
    gateway_info,
    init_gateway,
    list_members,
    main,
    parse_listen,
    unblock_hub,
)
from federation.gateway.settings import load_settings, settings_path
from federation.keys import fingerprint, generate_signing_key, thumbprint
from tests.federation.gateway_fixtures import store_counts


def test_init_creates_key_database_and_settings(tmp_path):
    registry = generate_signing_key()
    info = init_gateway(tmp_path / "gw", name="Elm Street", registry_key=fingerprint(registry.kid))
    assert info.kid == thumbprint(info.public_jwk)
    assert info.registry_kid == registry.kid
    assert stat.S_IMODE((tmp_path / "gw" / "gateway.key").stat().st_mode) == 0o600
    assert gateway_info(tmp_path / "gw") == info
    settings = load_settings(tmp_path / "gw")
    assert (settings.name, settings.relay_rings, settings.alert_ttl_s) == (
        "Elm Street",
        1,
        7 * 86400,
    )
    assert store_counts(tmp_path / "gw")["members"] == 0


@pytest.mark.parametrize("existing", ["gateway.key", "gateway.sqlite", "gateway.toml"])
def test_init_refuses_to_overwrite(tmp_path, existing):
    (tmp_path / existing).write_text("precious")
    with pytest.raises(GatewayExists) as caught:
        init_gateway(tmp_path, name="again")
    assert caught.value.reason == "gateway_exists"
    assert (tmp_path / existing).read_text() == "precious"


def test_invites_are_one_line_and_never_logged(tmp_path, caplog):
    init_gateway(tmp_path, name="n")
    with caplog.at_level(logging.DEBUG):
        codes = {create_invite(tmp_path) for _ in range(5)}
    assert len(codes) == 5
    for code in codes:
        assert code.replace("-", "")[4:] not in caplog.text
    assert store_counts(tmp_path)["invites"] == 5


def test_block_and_unblock_by_kid(tmp_path):
    init_gateway(tmp_path, name="n")
    kid = generate_signing_key().kid
    assert block_hub(tmp_path, kid, note="spam") == 0
    assert store_counts(tmp_path)["blocked"] == 1
    assert unblock_hub(tmp_path, kid) is True
    assert list_members(tmp_path) == []
    with pytest.raises(KeyInvalid):
        block_hub(tmp_path, "not-a-kid")
    with pytest.raises(GatewayError) as caught:
        block_hub(tmp_path / "nothing", kid)
    assert caught.value.reason == "no_gateway"


def test_settings_errors_name_the_key(tmp_path):
    init_gateway(tmp_path, name="n")
    path = settings_path(tmp_path)
    for text, needle in (
        ('name = "n"\nrelay_ring = 2\n', "relay_ring: unknown key"),
        ('name = "n"\npublic_url = "ftp://x"\n', "public_url"),
        ('name = "n"\nrelay_rings = 9\n', "relay_rings"),
        ("name = ", "not valid TOML"),
    ):
        path.write_text(text)
        with pytest.raises(GatewayError, match=needle) as caught:
            load_settings(tmp_path)
        assert caught.value.reason == "bad_settings"
    path.write_text('name = "n"\npublic_url = "https://GW.example.org/"\n')
    assert load_settings(tmp_path).public_url == "https://gw.example.org"


def test_command_line(tmp_path, capsys):
    assert main(["init", "--data", str(tmp_path), "--name", "Elm"]) == 0
    assert "fingerprint" in capsys.readouterr().out
    assert main(["init", "--data", str(tmp_path), "--name", "Elm"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert main(["invite", "--data", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.strip()) == 24
    kid = generate_signing_key().kid
    assert main(["block", "--data", str(tmp_path), kid]) == 0
    assert main(["unblock", "--data", str(tmp_path), kid]) == 0
    assert main(["run", "--data", str(tmp_path), "--listen", "nonsense"]) == 1
    assert parse_listen("[::1]:8470") == ("::1", 8470)
