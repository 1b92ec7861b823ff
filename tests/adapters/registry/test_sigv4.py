"""AWS Signature Version 4 (:mod:`reconcile.adapters.registry.sigv4`) against AWS's published
SigV4 test suite: the vectors of ``tests/aws-signing-test-suite/v4/`` in awslabs/aws-c-auth (the
suite AWS's SDKs share; commit 495329c2433034bd8fd53fc6ba9e0202d3fac876), header signing. Each
vector's canonical request, string to sign and signature are copied from its
``header-canonical-request.txt``, ``header-string-to-sign.txt`` and ``header-signature.txt``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconcile.adapters.registry import sigv4
from reconcile.policy.secrets import Secret, redact

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
SCOPE = "20150830/us-east-1/service/aws4_request"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
FORM_HASH = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"

# name: (method, url, headers, body, session token,
#        canonical request, string-to-sign hash line, signature)
VECTORS = {
    "get-vanilla": (
        "GET", "https://example.amazonaws.com/", {}, b"", None,
        f"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY}",
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    "post-vanilla": (
        "POST", "https://example.amazonaws.com/", {}, b"", None,
        f"POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY}",
        "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    # sign_body: the suite's signer adds x-amz-content-sha256 (here given, as the request's header).
    "post-x-www-form-urlencoded": (
        "POST", "https://example.amazonaws.com/",
        {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "13",
         "x-amz-content-sha256": FORM_HASH}, b"Param1=value1", None,
        "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
        f"x-amz-content-sha256:{FORM_HASH}\nx-amz-date:20150830T123600Z\n\n"
        f"content-length;content-type;host;x-amz-content-sha256;x-amz-date\n{FORM_HASH}",
        "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
        "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"),
    "get-vanilla-with-session-token": (
        "GET", "https://example.amazonaws.com/", {}, b"",
        "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
        "x-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\n"
        f"host;x-amz-date;x-amz-security-token\n{EMPTY}",
        "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
        "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"),
    "get-vanilla-query-order-key-case": (
        "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", {}, b"", None,
        "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        f"host;x-amz-date\n{EMPTY}",
        None, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    "get-header-value-trim": (
        "GET", "https://example.amazonaws.com/", {"My-Header1": " value1", "My-Header2": ' "a   b   c"'}, b"", None,
        'GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:"a b c"\nx-amz-date:20150830T123600Z\n\n'
        f"host;my-header1;my-header2;x-amz-date\n{EMPTY}",
        None, "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_the_published_test_suite_vectors(name: str) -> None:
    method, url, headers, body, token, canonical, hashed, signature = VECTORS[name]
    credentials = sigv4.AWSCredentials(KEY_ID, Secret(SECRET), Secret(token) if token else None)
    sent = sigv4.sign(method, url, headers, body, credentials, "us-east-1", "service", WHEN)
    names = canonical.split("\n")[-2]
    assert sent["Authorization"] == (f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{SCOPE}, SignedHeaders={names}, "
                                     f"Signature={signature}")
    assert sent["X-Amz-Date"] == "20150830T123600Z"
    assert sent["Host"] == "example.amazonaws.com"
    assert ("X-Amz-Security-Token" in sent) == (token is not None)
    unsigned = {k: v for k, v in sent.items() if k != "Authorization"}
    path, _, query = url.removeprefix("https://example.amazonaws.com").partition("?")
    built, signed = sigv4.canonical_request(method, path, query, unsigned, sigv4.sha256_hex(body))
    assert (built, signed) == (canonical, names)
    if hashed is not None:
        assert sigv4.string_to_sign("20150830T123600Z", SCOPE, built) == \
            f"AWS4-HMAC-SHA256\n20150830T123600Z\n{SCOPE}\n{hashed}"


def test_the_signing_key_of_the_documented_example() -> None:
    # AWS's "derive a signing key" example (20120215, us-east-1, iam), as documented with its result.
    key = sigv4.signing_key(Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_credentials_never_show_the_key_and_the_header_is_redacted() -> None:
    credentials = sigv4.AWSCredentials(KEY_ID, Secret(SECRET), Secret("session-token-value"))
    assert SECRET not in repr(credentials) and "session-token-value" not in repr(credentials)
    sent = sigv4.sign("POST", "https://api.ecr.eu-west-1.amazonaws.com/", {"X-Amz-Target": "x"}, b"{}",
                      credentials, "eu-west-1", "ecr", WHEN)
    assert redact(f"echoed: {sent['Authorization']} {sent['X-Amz-Security-Token']}") == "echoed: *** ***"
    with pytest.raises(TypeError):
        sigv4.AWSCredentials(KEY_ID, SECRET)  # type: ignore[arg-type]
