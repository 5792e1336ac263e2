"""Wire formats between hubs and the gateway: strict parsing, exact reasons, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.errors import FederationError, MalformedMessage, SchemaError
from federation.gateway.invites import ALPHABET, new_invite_code, normalize_invite, split_invite
from federation.keys import generate_signing_key
from federation.wire import (
    MAX_SEQ,
    AlertAnswer,
    ErrorAnswer,
    Info,
    JoinAnswer,
    RegisterAnswer,
    encode_ack,
    encode_frame,
    parse_ack,
    parse_answer,
    parse_error,
    parse_frame,
    parse_join_request,
    parse_since,
    parse_token_body,
)
from tests.outcomes import Outcomes

KEY = generate_signing_key()
TOKEN = "eyJhIjoiYiJ9.eyJjIjoiZCJ9.c2ln"
JWK = dict(KEY.public_jwk)

# Under a loaded CI machine generating inputs can be slow; that is not a failure.
SLOW_OK = [HealthCheck.too_slow]


def join_body(**changes):
    body = {"code": "ABCD-EFGH-JKMN-PQRS-TVWX", "jwk": JWK, "registration": TOKEN}
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_join_request_parses():
    join = parse_join_request(join_body())
    assert join.jwk.thumbprint() == KEY.kid
    assert join.registration == TOKEN


@pytest.mark.parametrize(
    ("body", "error", "reason", "field"),
    [
        (join_body(extra=1), SchemaError, "unknown_field", "extra"),
        (join_body(code=None), SchemaError, "missing_field", "code"),
        (join_body(code=7), SchemaError, "invalid_field", "code"),
        (join_body(registration="not a jws"), SchemaError, "invalid_field", "registration"),
        (join_body(jwk={**JWK, "d": JWK["x"]}), SchemaError, "invalid_field", "jwk"),
        (join_body(jwk={**JWK, "kty": "RSA"}), SchemaError, "invalid_field", "jwk.kty"),
        (b'{"code": "\xff"}', MalformedMessage, "not_utf8", None),
        (b"[" * 1000 + b"]" * 1000, MalformedMessage, "too_deep", None),
        (b'{"code": "a", "code": "b"}', MalformedMessage, "bad_json", None),
        (b"[]", MalformedMessage, "not_object", None),
        (b"{" + b" " * 70_000 + b"}", MalformedMessage, "too_large", None),
    ],
)
def test_join_request_rejections(body, error, reason, field):
    with pytest.raises(error) as caught:
        parse_join_request(body)
    assert caught.value.reason == reason
    if field is not None:
        assert caught.value.field == field


def test_ack_since_and_frames():
    assert parse_ack(encode_ack(42)) == 42
    assert parse_since(None) == parse_since("") == 0
    assert parse_since("17") == 17
    for bad in ("-1", "01", "1.0", " 1", "1e3", str(MAX_SEQ + 1), "١"):
        with pytest.raises(SchemaError) as caught:
            parse_since(bad)
        assert caught.value.reason == "bad_since"
    for bad, reason in (
        (b'{"ack": -1}', "invalid_field"),
        (b'{"ack": true}', "invalid_field"),
        (b'{"ack": 1, "x": 2}', "unknown_field"),
        (b'{"ack": 1.0}', "invalid_field"),
        (b"{}", "missing_field"),
        (b"1", "not_object"),
        (b"x" * 200, "too_large"),
    ):
        with pytest.raises(FederationError) as caught:
            parse_ack(bad)
        assert caught.value.reason == reason
    frame = parse_frame(encode_frame(3, "alert", "a" * 64, TOKEN, json.dumps(JWK)))
    assert (frame.seq, frame.kind, frame.jws, frame.jwk.thumbprint()) == (
        3,
        "alert",
        TOKEN,
        KEY.kid,
    )


def test_token_body():
    assert parse_token_body(TOKEN.encode() + b"\n", what="alert") == TOKEN
    for body, reason in ((b"", "empty"), (b"\xff", "not_ascii"), (b"x" * 70_000, "too_large")):
        with pytest.raises(MalformedMessage) as caught:
            parse_token_body(body, what="alert")
        assert caught.value.reason == reason


def test_answers_ignore_unknown_fields_from_newer_gateways():
    info = parse_answer(
        Info,
        json.dumps(
            {
                "v": 1,
                "new": True,
                "gateway": {"kid": KEY.kid, "jwk": JWK, "name": "n", "url": "http://x", "extra": 1},
            }
        ).encode(),
        what="info",
    )
    assert info.gateway.kid == KEY.kid
    assert parse_error(b'{"error": "no", "reason": "blocked"}').reason == "blocked"
    assert parse_error(b"<html>") is None


def test_invite_codes():
    code = new_invite_code()
    assert len(code) == 24 and code.count("-") == 4
    assert all(c in ALPHABET for c in code.replace("-", ""))
    invite_id, secret = split_invite(code.lower().replace("-", " "))
    assert invite_id + secret == code.replace("-", "")
    # Crockford: O reads as 0, I and L as 1.
    assert normalize_invite("OOOO-IIII-LLLL-0000-1111") == "0" * 4 + "1" * 8 + "0" * 4 + "1" * 4
    for bad in ("", "ABCD", "ABCD-EFGH-JKMN-PQRS-TVWU", "ABCD-EFGH-JKMN-PQRS-TVWXY", None):
        with pytest.raises(ValueError):
            normalize_invite(bad)


# -- fuzzing -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
NEAR_JOIN = st.fixed_dictionaries(
    {},
    optional={
        "code": st.one_of(st.text(max_size=30), JSON),
        "jwk": st.one_of(st.just(JWK), JSON),
        "registration": st.one_of(st.just(TOKEN), st.text(max_size=60), JSON),
        "extra": JSON,
    },
)
RAW = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    NEAR_JOIN.map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(body=RAW)
def test_fuzz_join_request(body):
    try:
        parse_join_request(body)
    except (MalformedMessage, SchemaError):
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(data=st.one_of(RAW, st.text(max_size=100), st.integers(-5, 2**54).map(encode_ack)))
def test_fuzz_ack(data):
    try:
        assert 0 <= parse_ack(data) <= MAX_SEQ
    except (MalformedMessage, SchemaError):
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(value=st.one_of(st.none(), st.text(max_size=25), st.integers(-5, 2**60).map(str)))
def test_fuzz_since(value):
    try:
        assert 0 <= parse_since(value) <= MAX_SEQ
    except SchemaError as err:
        assert err.reason == "bad_since"


FRAME_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "seq": JSON | st.integers(-3, 2**54),
        "kind": JSON | st.just("alert"),
        "id": JSON | st.just("a" * 64),
        "jws": JSON | st.just(TOKEN),
        "jwk": JSON | st.just(JWK),
    },
).map(lambda v: json.dumps(v).encode())


VALID_FRAME = st.fixed_dictionaries(
    {
        "seq": st.integers(1, MAX_SEQ),
        "kind": st.sampled_from(["alert", "request", "announcement"])
        | st.from_regex(r"\A[a-z][a-z_]{0,31}\Z"),
        "id": st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
        "jws": st.just(TOKEN),
    },
    optional={"jwk": st.none() | st.just(JWK), "proof": st.text(min_size=1, max_size=50)},
)


@st.composite
def mutated(draw, valid):
    """Draw a valid JSON object and maybe spoil it; return (its encoding, what was done)."""
    value = draw(valid)
    how = draw(st.sampled_from(["none", "extra", "none", "drop", "set", "flip", "truncate"]))
    if how == "extra":
        # A newer peer's extra field is ignored (a scalar: nesting has its own limit).
        value["newer_field"] = draw(st.none() | st.booleans() | st.integers() | st.text())
    elif how == "drop":
        del value[draw(st.sampled_from(sorted(value)))]
    elif how == "set":
        value[draw(st.sampled_from(sorted(value)))] = draw(JSON | st.integers(-3, 2**54))
    data = json.dumps(value).encode()
    if how == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif how == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data, how


def test_fuzz_frame():
    outcomes = Outcomes()

    @settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
    @given(
        sent=mutated(VALID_FRAME)
        | st.one_of(RAW, FRAME_LIKE, st.text(max_size=100)).map(lambda d: (d, "random"))
    )
    def parse(sent):
        data, how = sent
        try:
            frame = parse_frame(data)
        except (MalformedMessage, SchemaError):
            outcomes.note("refused")
            assert how not in ("none", "extra"), "a valid frame was refused"
            return
        outcomes.note("accepted")
        sent_object = json.loads(data)
        assert frame.seq >= 1
        assert (frame.seq, frame.kind, frame.id, frame.jws) == tuple(
            sent_object[k] for k in ("seq", "kind", "id", "jws"))

    parse()
    outcomes.require("accepted", "refused")


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(
    model=st.sampled_from([Info, JoinAnswer, RegisterAnswer, AlertAnswer, ErrorAnswer]),
    body=st.one_of(RAW, FRAME_LIKE),
)
def test_fuzz_answers(model, body):
    try:
        parse_answer(model, body, what="answer")
    except (MalformedMessage, SchemaError):
        pass
    parse_error(body)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(body=st.binary(max_size=200))
def test_fuzz_token_body(body):
    try:
        assert parse_token_body(body, what="alert")
    except MalformedMessage:
        pass


@st.composite
def near_invite_codes(draw):
    """Draw a real invite code as people type it, maybe with a slip; return (code, slipped)."""
    code = new_invite_code()
    # As typed: any case, dashes or spaces or nothing between groups, O for 0, I or L for 1.
    groups = code.split("-")
    code = draw(st.sampled_from(["-", " ", "", " - "])).join(groups)
    code = "".join(c.lower() if draw(st.booleans()) else c for c in code)
    code = code.replace("0", draw(st.sampled_from(["0", "O", "o"]))).replace(
        "1", draw(st.sampled_from(["1", "I", "l"])))
    slip = draw(st.sampled_from(["none", "none", "drop", "add", "replace"]))
    at = draw(st.integers(0, len(code) - 1))
    char = draw(st.characters(codec="utf-8"))
    if slip == "drop":
        code = code[:at] + code[at + 1 :]
    elif slip == "add":
        code = code[:at] + char + code[at:]
    elif slip == "replace":
        code = code[:at] + char + code[at + 1 :]
    return code, slip


def test_fuzz_invite_codes():
    outcomes = Outcomes()

    @settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
    @given(typed=near_invite_codes() | st.text(max_size=40).map(lambda c: (c, "random")))
    def split(typed):
        code, slip = typed
        try:
            invite_id, secret = split_invite(code)
        except ValueError:
            outcomes.note("refused")
            assert slip != "none", f"a real code as typed was refused: {code!r}"
            return
        outcomes.note("accepted")
        assert len(invite_id) == 4 and len(secret) == 16
        assert all(c in ALPHABET for c in invite_id + secret)
        if slip == "none":
            # Case, separators and look-alike letters never change which invite it is.
            typed_back = "".join(code.split()).replace("-", "").upper()
            assert invite_id + secret == typed_back.replace("O", "0").translate(
                str.maketrans("IL", "11"))

    split()
    outcomes.require("accepted", "refused")
