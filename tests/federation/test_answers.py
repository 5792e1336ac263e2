"""One-time answer keys, public answers and chain-of-custody statements (federation/answers.py)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrage import x25519

from federation.answers import (
    AnswerInvalid,
    CustodyInvalid,
    answer_key,
    open_custody,
    sign_answer,
    verify_answer,
    verify_custody,
)
from federation.jws import ALG, sign_compact
from federation.keys import generate_signing_key
from federation.sealed import seal_clip, sha256_hex

HUB, OTHER_HUB, GATEWAY, AGENCY = (generate_signing_key() for _ in range(4))
IDENTITY = x25519.Identity.generate()
RECIPIENT = str(IDENTITY.to_public())
REQUEST = "req-000000000000000001"
NOW = time.time()


def _clip(name: str = "porch") -> dict:
    sealed = seal_clip(name.encode() * 100, RECIPIENT)
    return {"sha256": sha256_hex(sealed), "size": len(sealed), "start": int(NOW) - 7200,
            "end": int(NOW) - 7140, "camera": name}


def _approve(hub=HUB, request=REQUEST, clips=None):
    return sign_answer(hub, gateway_kid=GATEWAY.kid, request_id=request, decision="approved",
                       clips=clips or [_clip()], agency_kid=AGENCY.kid, recipient=RECIPIENT,
                       now=NOW)


def test_one_time_keys_are_per_hub_gateway_and_request_and_derived_again():
    key = answer_key(HUB, gateway_kid=GATEWAY.kid, request_id=REQUEST)
    assert key.kid == answer_key(HUB, gateway_kid=GATEWAY.kid, request_id=REQUEST).kid
    others = {
        answer_key(HUB, gateway_kid=GATEWAY.kid, request_id=REQUEST + "2").kid,
        answer_key(HUB, gateway_kid=AGENCY.kid, request_id=REQUEST).kid,
        answer_key(OTHER_HUB, gateway_kid=GATEWAY.kid, request_id=REQUEST).kid,
        HUB.kid,
    }
    assert key.kid not in others and len(others) == 4


def test_an_approval_and_its_custody_verify_and_bind_each_other():
    signed = _approve()
    answer = verify_answer(signed.token, audience=GATEWAY.kid, now=NOW)
    assert answer.kid == signed.key_kid and answer.claims.decision == "approved"
    assert answer.sealed[-1] == signed.custody_sha256
    public = json.loads(base64.urlsafe_b64decode(signed.token.split(".")[1] + "=="))
    assert HUB.kid not in signed.token and "porch" not in json.dumps(public)
    statement = open_custody(signed.custody, IDENTITY)
    custody = verify_custody(statement, answer, agency_kid=AGENCY.kid)
    assert custody.hub_kid == HUB.kid and custody.claims.clips[0].camera == "porch"

    # Another hub's statement, or one for another request, does not fit this answer.
    other = _approve(hub=OTHER_HUB, clips=[dict(c) for c in custody.claims.clips])
    with pytest.raises(CustodyInvalid) as caught:
        verify_custody(open_custody(other.custody, IDENTITY), answer, agency_kid=AGENCY.kid)
    assert str(caught.value) == (
        "the custody statement does not match its answer: it names another one-time key than "
        "the answer's"
    )
    with pytest.raises(CustodyInvalid, match="does not verify: aud"):
        verify_custody(statement, answer, agency_kid=GATEWAY.kid)
    with pytest.raises(CustodyInvalid) as caught:
        open_custody(signed.custody, x25519.Identity.generate())
    assert caught.value.reason == "not_sealed_for_us"


def test_a_denial_carries_no_files_and_no_custody():
    signed = sign_answer(HUB, gateway_kid=GATEWAY.kid, request_id=REQUEST, decision="denied",
                         now=NOW)
    assert signed.custody is None and signed.statement is None
    answer = verify_answer(signed.token, audience=GATEWAY.kid, now=NOW)
    assert answer.sealed == [] and answer.kid == signed.key_kid


def _raw(signer, **claims) -> str:
    body = {"iss": signer.kid, "aud": GATEWAY.kid, "iat": int(NOW), "exp": int(NOW) + 60,
            "jti": "j-1", "request": REQUEST, "decision": "denied", **claims}
    payload = json.dumps(body).encode()
    return sign_compact(signer, {"alg": ALG, "typ": "porchlight-answer+jws", "kid": signer.kid},
                        payload)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({}, "missing_key"),
        ({"key": "not a jwk"}, "missing_key"),
        ({"key": {"kty": "OKP", "crv": "Ed25519", "x": "short"}}, "bad_jwk"),
        ({"key": dict(OTHER_HUB.public_jwk)}, "unknown_kid"),
    ],
)
def test_answers_without_their_own_key_are_refused(claims, reason):
    one_time = answer_key(HUB, gateway_kid=GATEWAY.kid, request_id=REQUEST)
    with pytest.raises(AnswerInvalid) as caught:
        verify_answer(_raw(one_time, **claims), audience=GATEWAY.kid, now=NOW)
    assert caught.value.reason == reason


VALID = _approve().token


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.builds(lambda i, c: VALID[:i] + c + VALID[i + 1:],
              st.integers(0, len(VALID) - 1), st.sampled_from("AB._-x=")),
))
def test_any_token_fails_only_as_answer_invalid(token):
    try:
        verify_answer(token, audience=GATEWAY.kid, now=NOW)
    except AnswerInvalid as err:
        assert err.reason and str(err)


STATEMENT = _approve().statement
ANSWER = verify_answer(_approve().token, audience=GATEWAY.kid, now=NOW)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=300),
    st.builds(lambda i, c: STATEMENT[:i] + c + STATEMENT[i + 1:],
              st.integers(0, len(STATEMENT) - 1), st.sampled_from("AB._-x=")),
))
def test_any_statement_fails_only_as_custody_invalid(statement):
    # What a hub seals for the agency is outside input to the agency, checked the same way.
    with pytest.raises(CustodyInvalid):
        verify_custody(statement, ANSWER, agency_kid=AGENCY.kid)
