"""RFC 9421 hop-by-hop signatures: round trip, every rejection with its reason, fuzzing."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from federation.hop import (
    COVERED_COMPONENTS,
    HopAuthError,
    HopDigestError,
    HopNotFresh,
    HopReplay,
    HopSignatureInvalid,
    HopSignatureMalformed,
    HopSignatureMissing,
    HopSigner,
    HopUnknownKey,
    content_digest,
    join_url,
    parse_content_digest,
    parse_signature,
    sign_request,
    signature_from_headers,
    verify_request,
)
from federation.keys import SigningKey
from federation.replay import MemoryReplayStore

NOW = 1_750_000_000
URL = "https://gateway.example.org/v1/alerts"

# Under a loaded CI machine generating inputs can be slow; that is not a failure.
SLOW_OK = [HealthCheck.too_slow]


def fixed_key(seed: int) -> SigningKey:
    return SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


HUB = fixed_key(11)
OTHER = fixed_key(12)
TRUSTED = {HUB.kid: HUB.private.public_key()}


def verify(headers, *, body=b"body", method="POST", url=URL, now=NOW, store=None, **kw):
    return verify_request(
        method=method,
        target_uri=url,
        headers=headers,
        body=body,
        resolve_key=TRUSTED,
        now=now,
        replay_store=store,
        **kw,
    )


def test_round_trip_names_the_key_and_covers_exactly_the_three_components():
    headers = sign_request(HUB, "POST", URL, b"body", now=NOW, nonce="n" * 22)
    assert headers["Content-Digest"] == content_digest(b"body")
    assert headers["Signature-Input"] == (
        'porchlight=("@method" "@target-uri" "content-digest");created=1750000000;'
        f'keyid="{HUB.kid}";nonce="{"n" * 22}"'
    )
    identity = verify(headers)
    assert (identity.keyid, identity.created, identity.nonce) == (HUB.kid, NOW, "n" * 22)
    assert signature_from_headers(headers).components == COVERED_COMPONENTS


def test_signature_verifies_with_cryptography_directly():
    # Independent check of the RFC 9421 signature base, without the library.
    headers = sign_request(HUB, "GET", URL + "?since=4", b"", now=NOW, nonce="abcdefghijklmnop")
    params = headers["Signature-Input"].split("=", 1)[1]
    base = (
        f'"@method": GET\n"@target-uri": {URL}?since=4\n'
        f'"content-digest": {content_digest(b"")}\n"@signature-params": {params}'
    )
    signature = base64.b64decode(headers["Signature"].split("=", 1)[1].strip(":"))
    HUB.private.public_key().verify(signature, base.encode())
    expected = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert content_digest(b"") == f"sha-256=:{expected}:"


def test_multidict_headers_and_signer_object():
    signer = HopSigner(HUB, clock=lambda: NOW)
    headers = CIMultiDict(signer.headers("POST", URL, b"body"))
    headers.add("Other", "x")
    assert verify(headers).keyid == HUB.kid == signer.keyid


@pytest.mark.parametrize(
    ("mutate", "kwargs", "error", "reason"),
    [
        (lambda h: h.pop("Signature"), {}, HopSignatureMissing, "hop_signature_missing"),
        (lambda h: h.pop("Signature-Input"), {}, HopSignatureMissing, "hop_signature_missing"),
        (
            lambda h: h.update(Signature="porchlight=:AAAA:"),
            {},
            HopSignatureMalformed,
            "hop_signature_malformed",
        ),
        (
            lambda h: h.update(
                {"Signature-Input": h["Signature-Input"].replace("porchlight=", "x=")}
            ),
            {},
            HopSignatureMalformed,
            "hop_signature_malformed",
        ),
        (
            lambda h: h.update(
                {"Signature-Input": h["Signature-Input"].replace(' "content-digest"', "")}
            ),
            {},
            HopSignatureMalformed,
            "hop_components",
        ),
        (
            lambda h: h.update(
                {"Signature-Input": h["Signature-Input"].replace('"@target-uri"', '"@authority"')}
            ),
            {},
            HopSignatureMalformed,
            "hop_components",
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"] + ";expires=1"}),
            {},
            HopSignatureMalformed,
            "hop_params",
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace(";nonce", ";x")}),
            {},
            HopSignatureMalformed,
            "hop_params",
        ),
        (lambda h: None, {"now": NOW + 61}, HopNotFresh, "hop_stale"),
        (lambda h: None, {"now": NOW - 6}, HopNotFresh, "hop_future"),
        (
            lambda h: h.update(
                {"Signature-Input": h["Signature-Input"].replace(HUB.kid, OTHER.kid)}
            ),
            {},
            HopUnknownKey,
            "hop_unknown_key",
        ),
        (lambda h: None, {"method": "PUT"}, HopSignatureInvalid, "hop_bad_signature"),
        (
            lambda h: None,
            {"url": URL.replace("alerts", "register")},
            HopSignatureInvalid,
            "hop_bad_signature",
        ),
        (
            lambda h: None,
            {"url": URL.replace("gateway.", "evil."), "presented_uri": URL},
            HopSignatureInvalid,
            "hop_wrong_target",
        ),
        (lambda h: None, {"body": b"bodx"}, HopDigestError, "digest_mismatch"),
        (lambda h: h.pop("Content-Digest"), {}, HopDigestError, "digest_missing"),
        (
            lambda h: h.update({"Content-Digest": "sha-256=:AAAA:"}),
            {},
            HopDigestError,
            "digest_malformed",
        ),
        # A digest for another body, not covered by a matching signature: the signature fails.
        (
            lambda h: h.update({"Content-Digest": content_digest(b"bodx")}),
            {"body": b"bodx"},
            HopSignatureInvalid,
            "hop_bad_signature",
        ),
    ],
)
def test_each_rejection_has_its_reason(mutate, kwargs, error, reason):
    headers = sign_request(HUB, "POST", URL, b"body", now=NOW)
    mutate(headers)
    with pytest.raises(error) as caught:
        verify(headers, **kwargs)
    assert caught.value.reason == reason
    assert str(caught.value)


def test_a_second_signature_is_refused():
    headers = sign_request(HUB, "POST", URL, b"body", now=NOW)
    other = sign_request(HUB, "POST", URL, b"body", now=NOW)
    headers["Signature-Input"] += ", second=" + other["Signature-Input"].split("=", 1)[1]
    headers["Signature"] += ", second=" + other["Signature"].split("=", 1)[1]
    with pytest.raises(HopSignatureMalformed, match="exactly one signature"):
        verify(headers)


def test_nonce_is_remembered_until_the_signature_goes_stale():
    store = MemoryReplayStore()
    headers = sign_request(HUB, "POST", URL, b"body", now=NOW)
    verify(headers, store=store)
    with pytest.raises(HopReplay) as caught:
        verify(headers, store=store, now=NOW + 30)
    assert caught.value.reason == "hop_replay"
    # A rejected request leaves nothing behind: the same nonce with a bad body is not stored.
    fresh = sign_request(HUB, "POST", URL, b"body", now=NOW)
    with pytest.raises(HopDigestError):
        verify(fresh, store=store, body=b"tampered")
    verify(fresh, store=store)


def test_alg_parameter_is_accepted_only_as_ed25519():
    headers = sign_request(HUB, "POST", URL, b"body", now=NOW, include_alg=True)
    assert ';alg="ed25519"' in headers["Signature-Input"]
    verify(headers)
    headers["Signature-Input"] = headers["Signature-Input"].replace("ed25519", "hmac-sha256")
    with pytest.raises(HopSignatureMalformed) as caught:
        verify(headers)
    assert caught.value.reason == "hop_params"


def test_join_url_encodes_the_query():
    assert join_url("http://h:1/", "/v1/stream", [("since", "5")]) == "http://h:1/v1/stream?since=5"
    assert join_url("http://h:1", "/v1/info") == "http://h:1/v1/info"


# -- fuzzing: every parser of outside input raises only its own typed errors -----------------

SF_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x17F), max_size=300)
SF_PIECES = st.lists(
    st.sampled_from(
        [
            "porchlight=",
            "sig=",
            "(",
            ")",
            '"@method"',
            '"@target-uri"',
            '"content-digest"',
            '"@authority"',
            ";created=",
            ";keyid=",
            ";nonce=",
            ";alg=",
            ";expires=",
            ";key=",
            '"x"',
            f'"{HUB.kid}"',
            '"abcdefghijklmnopq"',
            "1750000000",
            "-1",
            "1.5",
            "?1",
            ":AAAA:",
            ":" + "A" * 86 + "==:",
            ", ",
            " ",
            "*",
            "%",
            "\t",
            "=",
            "",
        ]
    ),
    max_size=24,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=SLOW_OK)
@given(signature_input=st.one_of(SF_TEXT, SF_PIECES), signature=st.one_of(SF_TEXT, SF_PIECES))
def test_fuzz_parse_signature(signature_input, signature):
    try:
        parsed = parse_signature(signature_input, signature)
    except HopAuthError as err:
        assert err.reason.startswith("hop_")
    else:
        assert sorted(parsed.components) == sorted(COVERED_COMPONENTS)
        assert len(parsed.signature) == 64


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(value=st.one_of(st.none(), SF_TEXT, SF_PIECES.map(lambda s: "sha-256=" + s)))
def test_fuzz_parse_content_digest(value):
    try:
        digests = parse_content_digest(value)
    except HopDigestError as err:
        assert err.reason in {"digest_missing", "digest_malformed"}
    else:
        assert len(digests["sha-256"]) == 32


HEADER_NAMES = st.sampled_from(
    ["Signature", "Signature-Input", "Content-Digest", "signature", "X-Other"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(
    pairs=st.lists(st.tuples(HEADER_NAMES, st.one_of(SF_TEXT, SF_PIECES)), max_size=6),
    body=st.binary(max_size=64),
    keep_valid=st.booleans(),
)
def test_fuzz_verify_request_raises_only_typed_errors(pairs, body, keep_valid):
    headers = CIMultiDict()
    if keep_valid:
        headers.update(sign_request(HUB, "POST", URL, body, now=NOW))
    for name, value in pairs:
        headers.add(name, value)
    try:
        verify(headers, body=body)
    except HopAuthError:
        pass
