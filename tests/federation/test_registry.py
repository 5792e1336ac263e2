"""The agency registry: authority tool, signing, verification rules, jurisdictions, publishing."""

from __future__ import annotations

import json
import os
import stat
import time

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.agency.tool import init_agency
from federation.authority.tool import (
    AUTHORITY_KEY_FILE,
    AuthorityError,
    add_agency,
    authority_jwk,
    authority_kid,
    init_authority,
    publish_registry,
    remove_agency,
    show_registry,
    sign_registry,
)
from federation.cells import cell_for, neighbour_cells
from federation.errors import FederationError
from federation.gateway.operator import create_invite, init_gateway
from federation.jws import sign_message
from federation.keys import generate_signing_key, parse_pin
from federation.member.client import GatewayClient
from federation.registry import (
    JurisdictionInvalid,
    RegistryError,
    RegistryExpired,
    RegistryRollback,
    RegistryWrongSigner,
    jurisdiction_from,
    parse_jurisdiction,
    verify_registry,
)
from federation.schemas import TYP_REGISTRY
from tests.federation.agency_fixtures import (
    CENTRE,
    JURISDICTION,
    get_json,
    neighbourhood,
    post_body,
)
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
    running_gateway,
)

AUD = "G" * 43
DAY = 86400


@pytest.fixture
def authority(tmp_path):
    root = tmp_path / "authority"
    fingerprint = init_authority(root, "Springfield oversight board")
    card = init_agency(tmp_path / "agency", "Springfield PD")
    add_agency(root, card, jurisdiction=JURISDICTION, since="2024-03-01", contact="desk@pd.example")
    return root, fingerprint, card


def _verify(root, token, **kwargs):
    args = {
        "authority_jwk": authority_jwk(root),
        "authority_kid": authority_kid(root),
        "audience": AUD,
        "now": time.time(),
    }
    args.update(kwargs)
    return verify_registry(token, **args)


def test_authority_init_and_agencies(authority, tmp_path):
    root, fingerprint, card = authority
    assert parse_pin(fingerprint) == authority_kid(root)
    assert stat.S_IMODE(os.stat(root / AUTHORITY_KEY_FILE).st_mode) == 0o600
    with pytest.raises(AuthorityError, match="already holds"):
        init_authority(root, "again")
    with pytest.raises(AuthorityError) as caught:
        add_agency(root, card, jurisdiction=JURISDICTION, since="2024-03-01", contact="x")
    assert caught.value.reason == "agency_exists"
    shown = show_registry(root)
    assert [a["name"] for a in shown["agencies"]] == ["Springfield PD"]
    assert shown["agencies"][0]["since"] == 1709251200  # 2024-03-01T00:00:00Z

    other = init_agency(tmp_path / "other", "Shelbyville PD")
    path = tmp_path / "card.json"
    path.write_text(json.dumps({**other, "extra": 1}))
    with pytest.raises(AuthorityError, match="unknown member 'extra'"):
        add_agency(root, path, jurisdiction=JURISDICTION, since="2024-01-01", contact="x")
    for bad in ("52.1,4.8", "h3:zz", "91,0,100", "0,0,0", "h3:" + cell_for(*CENTRE, 9)):
        with pytest.raises(JurisdictionInvalid):
            add_agency(root, other, jurisdiction=bad, since="2024-01-01", contact="x")
    with pytest.raises(RegistryError) as caught:
        add_agency(root, other, jurisdiction=JURISDICTION, since="2024-13-01", contact="x")
    assert caught.value.reason == "bad_since"
    # A district of resolution-7 cells is compacted to fit the registry.
    district = neighbour_cells(cell_for(*CENTRE), 2) | {
        c
        for parent in neighbour_cells(cell_for(*CENTRE, 6), 1)
        for c in h3.cell_to_children(parent, 7)
    }
    entry = add_agency(root, other, jurisdiction=sorted(district), since="2024-01-01", contact="x")
    assert entry["jurisdiction"].startswith("h3:") and len(entry["jurisdiction"]) <= 200
    assert parse_jurisdiction(entry["jurisdiction"]).contains_circle(*CENTRE, 300)
    assert remove_agency(root, other["kid"])["name"] == "Shelbyville PD"
    with pytest.raises(AuthorityError):
        remove_agency(root, other["kid"])


def test_versions_only_go_up(authority):
    root, _, _ = authority
    first = _verify(root, sign_registry(root, audience=AUD))
    second = _verify(root, sign_registry(root, audience=AUD), last_version=first.version)
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(RegistryError) as caught:
        sign_registry(root, audience=AUD, version=2)
    assert caught.value.reason == "registry_rollback"
    with pytest.raises(RegistryError) as caught:
        sign_registry(root, audience=AUD, lifetime_s=91 * DAY)
    assert caught.value.reason == "lifetime_too_long"
    assert show_registry(root)["version"] == 2


def test_verify_registry_refuses_signer_rollback_expiry(authority):
    root, _, _ = authority
    token = sign_registry(root, audience=AUD, lifetime_s=30 * DAY)
    registry = _verify(root, token)
    assert registry.agency(next(iter(registry.agencies))).name == "Springfield PD"
    for last in (1, 5):
        with pytest.raises(RegistryRollback) as caught:
            _verify(root, token, last_version=last)
        assert caught.value.reason == "registry_rollback"
    with pytest.raises(RegistryExpired) as caught:
        _verify(root, token, now=time.time() + 31 * DAY)
    assert caught.value.reason == "registry_expired"
    with pytest.raises(RegistryExpired):
        registry.check_current(time.time() + 31 * DAY)
    stranger = generate_signing_key()
    with pytest.raises(RegistryWrongSigner) as caught:
        _verify(root, token, authority_jwk=stranger.public_jwk)
    assert caught.value.reason == "registry_wrong_signer"
    # Signed by another key while claiming to come from the pinned authority.
    forged = sign_message(
        stranger, TYP_REGISTRY, {"aud": AUD, "version": 9, "agencies": []}, now=time.time()
    )
    with pytest.raises(RegistryWrongSigner):
        _verify(root, forged)
    with pytest.raises(FederationError) as caught:
        _verify(root, token, audience="H" * 43)
    assert caught.value.reason == "wrong_aud"


def test_jurisdictions():
    circle = parse_jurisdiction("52.3731,4.8926,10000")
    assert circle.to_text() == "52.3731,4.8926,10000"
    assert circle.contains_circle(*CENTRE, 650)
    assert not circle.contains_circle(CENTRE[0], CENTRE[1] + 0.14, 650)  # ~9.5 km east + 650 m
    cells = jurisdiction_from([cell_for(*CENTRE)])
    lat, lon = h3.cell_to_latlng(cell_for(*CENTRE))
    assert cells.contains_circle(lat, lon, 650)  # well inside one cell (inradius ~1 km)
    assert not cells.contains_circle(lat, lon, 1500)  # reaches the neighbouring cells
    wide = jurisdiction_from(sorted(neighbour_cells(cell_for(*CENTRE), 2)))
    assert wide.contains_circle(lat, lon, 1500)
    for bad in ("", "h3:", "1,2", "1,2,3,4", "a,b,c", "01,2,3", "h3:abc", "52,4,1e3"):
        with pytest.raises(JurisdictionInvalid):
            parse_jurisdiction(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=220))
def test_fuzzed_jurisdictions_parse_or_fail_cleanly(text):
    try:
        jurisdiction = parse_jurisdiction(text)
    except JurisdictionInvalid:
        return
    assert parse_jurisdiction(jurisdiction.to_text()) == jurisdiction


@settings(max_examples=200, deadline=None)
@given(st.floats(-89.9, 89.9), st.floats(-179.9, 179.9), st.floats(1, 1_000_000))
def test_circle_jurisdictions_round_trip(lat, lon, radius):
    jurisdiction = jurisdiction_from((lat, lon, radius))
    again = parse_jurisdiction(jurisdiction.to_text())
    assert again.circle is not None
    assert all(abs(a - b) < 1e-6 for a, b in zip(again.circle, jurisdiction.circle, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400) | st.binary(max_size=400))
def test_fuzzed_registry_tokens_fail_cleanly(token):
    jwk = generate_signing_key().public_jwk
    with pytest.raises(FederationError):
        verify_registry(token, authority_jwk=jwk, authority_kid=AUD, audience=AUD, now=0)


async def test_publish_serve_and_refuse(tmp_path):
    async with neighbourhood(tmp_path, publish=False) as hood:
        answer = await publish_registry(hood.authority_dir, hood.url)
        assert answer == {"version": 1, "log_index": 0}
        status, served = await get_json(hood.url + "/v1/registry")
        assert status == 200 and served["version"] == 1
        assert hood.gateway.requests.log.entry(0) == served["registry"].encode()
        # The same bytes again: the same answer.
        body = json.dumps({"registry": served["registry"], "jwk": served["authority_jwk"]})
        status, again = await post_body(
            hood.url + "/v1/registry", body.encode(), "application/json"
        )
        assert (status, again) == (200, {"version": 1, "log_index": 0})
        # Another authority's registry.
        other = tmp_path / "other"
        init_authority(other, "Impostor")
        token = sign_registry(other, audience=hood.kid)
        body = json.dumps({"registry": token, "jwk": authority_jwk(other)})
        status, refused = await post_body(
            hood.url + "/v1/registry", body.encode(), "application/json"
        )
        assert (status, refused["reason"]) == (403, "registry_wrong_signer")
        status, refused = await post_body(
            hood.url + "/v1/registry", b'{"registry": 1}', "application/json"
        )
        assert status == 400
        assert hood.log_size == 1

        # A hub that holds a newer version refuses the older one the gateway serves.
        key = generate_signing_key()
        from federation.member.client import join_gateway

        membership = await join_gateway(
            hood.url, create_invite(hood.data_dir), key, cell_for(*CENTRE)
        )
        async with GatewayClient.for_membership(membership, key) as client:
            first = await client.fetch_registry(hood.authority_kid)
            assert await client.fetch_registry(hood.authority_kid, current=first) is first
            newer = _verify(
                hood.authority_dir,
                sign_registry(hood.authority_dir, audience=hood.kid),
                audience=hood.kid,
            )
            with pytest.raises(RegistryRollback):
                await client.fetch_registry(hood.authority_kid, current=newer)
            with pytest.raises(RegistryWrongSigner):
                await client.fetch_registry(authority_kid(other))


async def test_gateway_without_registry_key_refuses_registries(tmp_path):
    root = tmp_path / "authority"
    init_authority(root, "Board")
    async with running_gateway(tmp_path / "gw") as gateway:
        token = sign_registry(root, audience=gateway.kid)
        body = json.dumps({"registry": token, "jwk": authority_jwk(root)}).encode()
        status, answer = await post_body(gateway.url + "/v1/registry", body, "application/json")
        assert (status, answer["reason"]) == (409, "registry_not_configured")
        status, answer = await get_json(gateway.url + "/v1/registry")
        assert (status, answer["reason"]) == (404, "no_registry")
        status, answer = await post_body(gateway.url + "/v1/requests", b"a.b.c", "application/jose")
        assert (status, answer["reason"]) == (409, "no_registry")


def test_gateway_init_pins_the_authority(tmp_path):
    root = tmp_path / "authority"
    fingerprint = init_authority(root, "Board")
    info = init_gateway(tmp_path / "gw", name="Elm", registry_key=fingerprint)
    assert info.registry_kid == authority_kid(root)


_CARD_VALUES = (
    st.none()
    | st.integers()
    | st.text(max_size=80)
    | st.dictionaries(
        st.sampled_from(["kty", "crv", "x", "d", "kid"]), st.text(max_size=50), max_size=5
    )
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["name", "jwk", "recipient", "kid", "other"]), _CARD_VALUES, max_size=5
    )
)
def test_fuzzed_agency_cards_fail_cleanly(card):
    from federation.authority.tool import load_card

    try:
        load_card(card)
    except AuthorityError as err:
        assert err.reason == "bad_card"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=16), max_size=5) | st.tuples(st.floats(), st.floats(), st.floats())
)
def test_fuzzed_jurisdiction_values_fail_cleanly(value):
    try:
        jurisdiction_from(value)
    except JurisdictionInvalid:
        pass
