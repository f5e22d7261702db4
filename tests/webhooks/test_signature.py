"""Stripe-Signature verification: one test per way a header can be wrong, and stripe-python as the oracle."""
from __future__ import annotations

import time

import pytest
import stripe
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from webhooks import defaults
from webhooks.errors import SignatureVerificationError
from webhooks.signature import compute_signature, parse_header, sign, verify

BODY = b'{"id":"evt_1","object":"event","type":"checkout.session.completed"}'
SECRET = "whsec_primary"
OTHER = "whsec_rolled_in"
NOW = 1_700_000_000
TOLERANCE = defaults.SIGNATURE_TOLERANCE_S


def check_of(body: bytes, header: str, secrets: tuple[str, ...] = (SECRET,), *, now: float = NOW,
             tolerance: int = TOLERANCE) -> str | None:
    """The check that refused the header, or None when crossfill accepts it."""
    try:
        verify(body, header, secrets, now=now, tolerance=tolerance)
    except SignatureVerificationError as error:
        return error.check
    return None


def stripe_accepts(body: bytes, header: str, secret: str, tolerance: int = TOLERANCE) -> bool | None:
    """stripe-python's verdict on the same delivery (it reads the clock itself).

    None when stripe-python has no verdict: it compares ``str`` signatures with
    ``hmac.compare_digest``, which raises TypeError on a non-ASCII one before any later ``v1``
    is looked at.
    """
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
    except stripe.SignatureVerificationError:
        return False
    except TypeError:
        return None
    return True


def v1(secret: str = SECRET, timestamp: int = NOW, body: bytes = BODY) -> str:
    return compute_signature(body, secret, timestamp)


# --- the test vector and the shape of what we sign -------------------------------------------------

def test_architecture_test_vector() -> None:
    body, expected = b'{"id":"evt_1","object":"event"}', "c9bcc97a8a4ff4bae104ef32dcacf8b24b4c3cf0512aef639b8502673db15436"

    assert compute_signature(body, "whsec_x", 1_700_000_000) == expected
    assert sign(body, ["whsec_x"], timestamp=1_700_000_000) == f"t=1700000000,v1={expected}"
    assert verify(body, f"t=1700000000,v1={expected}", ["whsec_x"], now=1_700_000_000, tolerance=300) == 1_700_000_000


def test_signing_matches_stripe_python_header_generator() -> None:
    payload = '{"id":"evt_2","object":"event","note":"caf\u00e9 \u2603"}'

    ours = sign(payload.encode("utf-8"), [SECRET], timestamp=NOW)

    assert ours == stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=NOW)


def test_sign_with_v0_appends_it_after_the_v1s() -> None:
    assert sign(BODY, [SECRET, OTHER], timestamp=NOW, v0="abc") == f"t={NOW},v1={v1()},v1={v1(OTHER)},v0=abc"


def test_a_correct_header_is_accepted_and_its_timestamp_returned() -> None:
    assert verify(BODY, f"t={NOW},v1={v1()}", [SECRET], now=NOW, tolerance=TOLERANCE) == NOW
    assert stripe_accepts(BODY, f"t={NOW},v1={v1()}", SECRET, tolerance=0) is True  # the oracle agrees


# --- every way a header can be wrong -------------------------------------------------------------

@pytest.mark.parametrize("header", ["", None])
def test_missing_header(header: str | None) -> None:
    assert check_of(BODY, header or "") == "missing_header"


@pytest.mark.parametrize("header", [
    "garbage",
    ",,,",
    "=,=",
    f"v1={v1()}",  # no timestamp at all
    f"t=,v1={v1()}",
    f"t=soon,v1={v1()}",
    f"t=1.7e9,v1={v1()}",
    f"t={NOW},v1",  # a v1 without a value
    f"t,v1={v1()}",  # a t without a value
    f"t={NOW},v1={v1()},t",  # a later bare t: stripe-python refuses the whole header too
])
def test_garbled_header(header: str) -> None:
    assert check_of(BODY, header) == "malformed_header"
    assert stripe_accepts(BODY, header, SECRET, tolerance=0) is False


def test_header_without_v1() -> None:
    assert check_of(BODY, f"t={NOW}") == "no_v1_signature"


def test_v0_only_is_refused_even_when_it_carries_a_valid_signature() -> None:
    # A downgrade: the v1 was stripped and the correct HMAC moved to another scheme.
    assert check_of(BODY, f"t={NOW},v0={v1()}") == "no_v1_signature"


def test_unknown_schemes_are_ignored() -> None:
    assert check_of(BODY, f"t={NOW},v2={v1()},x=1") == "no_v1_signature"
    assert check_of(BODY, f"t={NOW},v2={v1()},v1={v1()}") is None


def test_signature_of_another_body_does_not_match() -> None:
    assert check_of(BODY + b" ", f"t={NOW},v1={v1()}") == "no_match"


def test_signature_from_a_wrong_secret_does_not_match() -> None:
    assert check_of(BODY, f"t={NOW},v1={v1('whsec_attacker')}") == "no_match"


def test_signature_over_another_timestamp_does_not_match() -> None:
    # Replaying an old signature with a fresh t fails: t is part of the signed payload.
    assert check_of(BODY, f"t={NOW},v1={v1(timestamp=NOW - 1000)}") == "no_match"


def test_stale_timestamp() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW - TOLERANCE - 1)

    assert check_of(BODY, header) == "too_old"
    assert check_of(BODY, sign(BODY, [SECRET], timestamp=NOW - TOLERANCE)) is None


def test_future_timestamp() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW + TOLERANCE + 1)

    assert check_of(BODY, header) == "in_future"
    assert check_of(BODY, sign(BODY, [SECRET], timestamp=NOW + TOLERANCE)) is None


def test_zero_tolerance_turns_the_clock_check_off() -> None:
    assert check_of(BODY, sign(BODY, [SECRET], timestamp=1), tolerance=0) is None
    assert check_of(BODY, sign(BODY, [SECRET], timestamp=NOW * 2), tolerance=0) is None


def test_uppercase_hex_is_refused_as_by_stripe() -> None:
    header = f"t={NOW},v1={v1().upper()}"

    assert check_of(BODY, header) == "no_match"
    assert stripe_accepts(BODY, header, SECRET, tolerance=0) is False


@pytest.mark.parametrize(("header", "check"), [
    (f"t={NOW}, v1={v1()}", "no_v1_signature"),  # " v1" is another scheme's name
    (f" t={NOW},v1={v1()}", "malformed_header"),  # " t" is not t
    (f"t={NOW},v1={v1()} ", "no_match"),  # the trailing space is part of the signature
    (f"t={NOW},v1 ={v1()}", "no_v1_signature"),
])
def test_spaces_are_not_trimmed(header: str, check: str) -> None:
    assert check_of(BODY, header) == check
    assert stripe_accepts(BODY, header, SECRET, tolerance=0) is False


def test_a_space_inside_the_timestamp_value_is_tolerated_as_by_int() -> None:
    # int(" 1700000000") works, in stripe-python as here; the signed payload uses the parsed number.
    assert check_of(BODY, f"t= {NOW},v1={v1()}") is None
    assert stripe_accepts(BODY, f"t= {NOW},v1={v1()}", SECRET, tolerance=0) is True


def test_repeated_t_the_first_one_wins() -> None:
    assert check_of(BODY, f"t={NOW},t={NOW - 1000},v1={v1()}") is None
    assert check_of(BODY, f"t={NOW - 1000},t={NOW},v1={v1()}") == "no_match"


def test_many_v1s_any_one_matching_is_enough() -> None:
    header = f"t={NOW},v1={'0' * 64},v1={v1()},v1=zz"

    assert check_of(BODY, header) is None


def test_oversized_header_is_refused_before_it_is_parsed() -> None:
    base = f"t={NOW},v1={v1()}"
    fits = base + ",v0=" + "a" * (defaults.MAX_SIGNATURE_HEADER_BYTES - len(base) - 4)
    too_long = fits + "a"

    assert len(fits) == defaults.MAX_SIGNATURE_HEADER_BYTES
    assert check_of(BODY, fits) is None
    assert check_of(BODY, too_long) == "malformed_header"


def test_error_messages_never_show_a_secret_or_the_expected_signature() -> None:
    wrong = f"t={NOW},v1={v1('whsec_attacker')}"

    with pytest.raises(SignatureVerificationError) as caught:
        verify(BODY, wrong, [SECRET, OTHER], now=NOW, tolerance=TOLERANCE)

    shown = str(caught.value) + str(caught.value.to_json())
    for hidden in (SECRET, OTHER, v1(), v1(OTHER)):
        assert hidden not in shown
    assert caught.value.to_json()["error"]["type"] == "signature_verification"
    assert caught.value.to_json()["error"]["check"] == "no_match"


def test_parse_header_returns_timestamp_and_every_v1() -> None:
    assert parse_header(f"t={NOW},v1=a,v0=b,v1=c") == (NOW, ["a", "c"])


# --- secret rotation: two secrets configured, two v1s sent ---------------------------------------

@pytest.mark.parametrize("configured", [(SECRET, OTHER), (OTHER, SECRET)])
@pytest.mark.parametrize("signed_with", [SECRET, OTHER])
def test_rotation_any_configured_secret_matches_a_single_v1(configured: tuple[str, str], signed_with: str) -> None:
    assert check_of(BODY, sign(BODY, [signed_with], timestamp=NOW), configured) is None


@pytest.mark.parametrize("configured", [(SECRET,), (OTHER,), (SECRET, OTHER), (OTHER, SECRET)])
@pytest.mark.parametrize("order", [(SECRET, OTHER), (OTHER, SECRET)])
def test_rotation_two_v1s_match_either_configured_secret(configured: tuple[str, ...], order: tuple[str, str]) -> None:
    assert check_of(BODY, sign(BODY, list(order), timestamp=NOW), configured) is None


def test_rotation_two_v1s_from_other_secrets_still_fail() -> None:
    header = sign(BODY, ["whsec_a", "whsec_b"], timestamp=NOW)

    assert check_of(BODY, header, (SECRET, OTHER)) == "no_match"


# --- stripe-python as the oracle ---------------------------------------------------------------

secrets_st = st.text(min_size=1, max_size=40).filter(lambda s: s.strip(" \t\r\n\f\v") != "")
bodies_st = st.text(max_size=300)
# Ages (now - t) in seconds, kept 3 s away from the tolerance edges so that the few microseconds
# between our clock reading and stripe-python's cannot flip a verdict.
fresh_ages = st.integers(-TOLERANCE + 3, TOLERANCE - 3)
stale_ages = st.integers(TOLERANCE + 3, 10**9)
future_ages = st.integers(-(10**9), -TOLERANCE - 3)
ages_st = st.one_of(fresh_ages, stale_ages, future_ages)


def assert_same_verdict(body: bytes, header: str, secrets: tuple[str, ...], now: float) -> None:
    """crossfill accepts exactly when stripe-python accepts with one of the secrets; the one
    permitted difference is a timestamp further in the future than the tolerance."""
    ours = check_of(body, header, secrets, now=now)  # any other exception fails the test: never a crash
    verdicts = [stripe_accepts(body, header, secret) for secret in secrets]
    assume(None not in verdicts)
    theirs = any(verdicts)
    if ours == "in_future":
        assert parse_header(header)[0] > now + TOLERANCE
        assert theirs, "crossfill refused a future timestamp of a header stripe-python also refuses"
    else:
        assert (ours is None) == theirs, f"crossfill says {ours or 'accepted'}, stripe-python says {theirs}"


@settings(max_examples=300)
@given(body=bodies_st, signer=secrets_st, configured=secrets_st, age=ages_st, same_secret=st.booleans())
def test_property_verdict_equals_stripe_python_on_well_formed_headers(
        body: str, signer: str, configured: str, age: int, same_secret: bool) -> None:
    # Given a delivery signed by stripe-python's own header generator
    now = time.time()
    timestamp = int(now) - age
    secret = signer if same_secret else configured
    raw = body.encode("utf-8")
    header = stripe.WebhookSignature.generate_signature_header(body, signer, timestamp=timestamp)
    assert header == sign(raw, [signer], timestamp=timestamp)

    # Then crossfill and stripe-python agree on it (and refuse a future timestamp on their own)
    assert_same_verdict(raw, header, (secret,), now)
    if age < -TOLERANCE and secret == signer:
        assert check_of(raw, header, (secret,), now=now) == "in_future"


def _header_parts(body: bytes, signer: str, timestamp: int) -> st.SearchStrategy[str]:
    good = compute_signature(body, signer, timestamp)
    return st.one_of(
        st.sampled_from([
            f"t={timestamp}", f"v1={good}", f"v1={good.upper()}", f"v0={good}", f"v1={good[:-1]}",
            f"v1={compute_signature(body, signer + 'x', timestamp)}", f"t={timestamp - 1}",
            f"t={timestamp}0", f"v1={good}=", f"V1={good}", f"T={timestamp}", "t", "v1", "", "=",
            f"t= {timestamp}", f"t=+{timestamp}", f"t={timestamp:_}", f"v1= {good}",
        ]),
        st.text(max_size=12),
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["t", "v1", "v0"]), st.text(max_size=12)),
    )


@settings(max_examples=500)
@given(data=st.data(), body=bodies_st, signer=secrets_st, others=st.lists(secrets_st, max_size=2),
       age=ages_st, signer_configured=st.booleans())
def test_property_verdict_equals_stripe_python_on_mutated_headers(
        data: st.DataObject, body: str, signer: str, others: list[str], age: int, signer_configured: bool) -> None:
    # Given a header assembled from valid, near-valid and garbage items in any order
    now = time.time()
    timestamp = int(now) - age
    raw = body.encode("utf-8")
    parts = data.draw(st.lists(_header_parts(raw, signer, timestamp), min_size=1, max_size=6), label="parts")
    header = data.draw(st.sampled_from([",", ", "]), label="separator").join(parts)
    assume(header and len(header) <= defaults.MAX_SIGNATURE_HEADER_BYTES)
    configured = (signer, *others) if signer_configured else (*others, "whsec_unrelated")

    # Then crossfill's verdict is stripe-python's, secret by secret
    assert_same_verdict(raw, header, configured, now)


@settings(max_examples=100)
@given(body=bodies_st, signer=secrets_st, ahead=st.integers(TOLERANCE + 1, 10**9))
def test_property_future_timestamps_beyond_tolerance_are_refused(body: str, signer: str, ahead: int) -> None:
    raw = body.encode("utf-8")
    header = sign(raw, [signer], timestamp=NOW + ahead)

    assert check_of(raw, header, (signer,), now=NOW) == "in_future"
    assert check_of(raw, header, (signer,), now=NOW + ahead - TOLERANCE) is None
