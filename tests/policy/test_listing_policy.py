"""Registry ``spec.listing``: the schema, its defaults, what validate refuses, and pull-request mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.policy import PolicyError, load_policies
from reconcile.policy.model import AWSCredentialRefs, Listing
from reconcile.policy.secrets import SecretRef
from reconcile.policy.trust import compose


def _write(directory: Path, *documents: tuple[str, str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "r.yaml").write_text("---\n".join(
        f"apiVersion: reconcile/v1\nkind: Registry\nmetadata: {{name: {name}}}\nspec: {{url: '{url}'{extra}}}\n"
        for name, url, extra in documents))
    return directory


def test_the_listing_api_is_declared_with_a_url_defaulting_per_api(tmp_path: Path) -> None:
    _write(tmp_path, ("plain", "https://r.example.com", ""),
           ("harbor", "https://harbor.example.com", ", listing: {api: harbor}"),
           ("hub", "https://registry-1.docker.io", ", listing: {api: dockerhub}"),
           ("gitlab", "https://registry.gitlab.com", ", listing: {api: gitlab}"),
           ("elsewhere", "https://harbor.example.com", ", listing: {api: harbor, url: 'https://api.example.com/'}"))
    registries = load_policies(str(tmp_path)).registries
    assert {name: r.listing for name, r in registries.items()} == {
        "plain": None, "harbor": Listing("harbor", "https://harbor.example.com"),
        "hub": Listing("dockerhub", "https://hub.docker.com"),
        "gitlab": Listing("gitlab", "https://registry.gitlab.com"),
        "elsewhere": Listing("harbor", "https://api.example.com")}
    # Credentials follow allowedHosts, not the listing: hub.docker.com is not the registry's host.
    assert not registries["hub"].may_receive_credentials("https://hub.docker.com/v2/namespaces/a/repositories/b/tags")


@pytest.mark.parametrize(("url", "extra", "message"), [
    ("https://r.example.com", ", listing: {api: quay}",
     "/spec/listing/api: 'quay' is not one of: harbor, gitlab, dockerhub, ecr"),
    ("https://r.example.com", ", listing: {url: 'https://r.example.com'}",
     "/spec/listing: 'api' is a required property"),
    ("https://r.example.com", ", listing: {api: harbor, url: 'https://r.example.com/api'}", "/spec/listing/url"),
    ("https://r.example.com", ", listing: {api: harbor, url: 'http://api.example.com'}",
     "/spec/listing/url: plain http is allowed only for loopback hosts; use https://"),
    ("https://r.example.com", ", listing: {api: harbor, url: 'http://127.0.0.1:8080'}",
     "/spec/listing/url: the registry is https, so its listing API must be too"),
    ("oci-layout:/srv/oci", ", listing: {api: harbor}", "/spec/listing: an oci-layout directory has no listing API"),
])
def test_a_listing_that_cannot_be_used_is_refused(tmp_path: Path, url: str, extra: str, message: str) -> None:
    _write(tmp_path, ("r", url, extra))
    with pytest.raises(PolicyError) as raised:
        load_policies(str(tmp_path))
    assert any(p.message.startswith(message) for p in raised.value.problems), raised.value.problems


def test_a_pull_request_cannot_add_or_change_a_listing(tmp_path: Path) -> None:
    """Registries come from the trusted ref: a listing added by the ref read is a change to review,
    not used; a Registry only the ref read defines connects to nothing, its listing neither."""
    trusted = load_policies(str(_write(tmp_path / "trusted", ("ci", "https://r.example.com", ""))))
    proposed = load_policies(str(_write(
        tmp_path / "proposed", ("ci", "https://r.example.com", ", listing: {api: harbor, url: 'https://evil.example'}"),
        ("new", "https://n.example.com", ", listing: {api: dockerhub}"))))
    composed = compose(trusted, proposed, "main")
    assert composed.registries["ci"].listing is None
    assert composed.registries["new"].listing is None and "Registry/new" in composed.unconnectable
    (change,) = [c for c in composed.connection_changes if c.name == "ci"]
    assert change.details == ("listing (none) → {api harbor, url https://evil.example}",)


ECR = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
KEYS = "credentials: {accessKeyId: AKIAIOSFODNN7EXAMPLE, secretAccessKey: {env: AWS_SECRET_ACCESS_KEY}}"


def test_an_ecr_listing_defaults_to_the_regions_api_and_holds_its_keys_by_reference(tmp_path: Path) -> None:
    _write(tmp_path, ("ecr", ECR, f", listing: {{api: ecr, {KEYS}}}"),
           ("session", ECR, ", listing: {api: ecr, url: 'https://api.ecr.eu-west-1.amazonaws.com', credentials: "
                            "{accessKeyId: {env: AWS_ACCESS_KEY_ID}, secretAccessKey: {file: /var/run/aws/key}, "
                            "sessionToken: {kubernetes: {namespace: ci, name: aws, key: token}}}}"),
           ("endpoint", "https://registry.example.com",
            f", allowedHosts: [registry.example.com, 'vpce.example.com:8443'], listing: {{api: ecr, "
            f"url: 'https://vpce.example.com:8443', region: us-east-2, {KEYS}}}"))
    registries = load_policies(str(tmp_path)).registries
    secret = SecretRef("env", env="AWS_SECRET_ACCESS_KEY")
    assert registries["ecr"].listing == Listing("ecr", "https://api.ecr.eu-west-1.amazonaws.com", None,
                                                AWSCredentialRefs("AKIAIOSFODNN7EXAMPLE", secret))
    assert registries["session"].listing is not None
    assert registries["session"].listing.credentials == AWSCredentialRefs(
        SecretRef("env", env="AWS_ACCESS_KEY_ID"), SecretRef("file", path="/var/run/aws/key"),
        SecretRef("kubernetes", namespace="ci", name="aws", key="token"))
    assert registries["endpoint"].listing == Listing("ecr", "https://vpce.example.com:8443", "us-east-2",
                                                     AWSCredentialRefs("AKIAIOSFODNN7EXAMPLE", secret))


@pytest.mark.parametrize(("url", "extra", "message"), [
    (ECR, ", listing: {api: ecr}", "/spec/listing/credentials: an ecr listing signs DescribeImages"),
    (ECR, ", listing: {api: ecr, credentials: {accessKeyId: AKIAIOSFODNN7EXAMPLE, secretAccessKey: s3cr3t}}",
     "/spec/listing/credentials/secretAccessKey"),
    (ECR, ", listing: {api: harbor, region: eu-west-1}", "/spec/listing/region: only an ecr listing takes region"),
    (ECR, f", listing: {{api: harbor, {KEYS}}}", "/spec/listing/credentials: only an ecr listing takes credentials"),
    ("https://r.example.com", f", listing: {{api: ecr, {KEYS}}}",
     "/spec/listing/url: the registry's url is not an ECR registry's"),
    (ECR, f", listing: {{api: ecr, url: 'https://evil.example', {KEYS}}}",
     "/spec/listing/url: evil.example is not ECR's API"),
    (ECR, f", listing: {{api: ecr, url: 'https://api.ecr.eu-west-1.amazonaws.com', region: us-east-1, {KEYS}}}",
     "/spec/listing/region: us-east-1 is not the region of the listing url (eu-west-1)"),
    ("https://r.example.com", f", allowedHosts: [r.example.com, vpce.example.com], listing: {{api: ecr, "
     f"url: 'https://vpce.example.com', {KEYS}}}", "/spec/listing/region: the region to sign for cannot be told"),
    (ECR, f", listing: {{api: ecr, region: Mars, {KEYS}}}", "/spec/listing/region"),
])
def test_an_ecr_listing_that_cannot_be_used_is_refused(tmp_path: Path, url: str, extra: str, message: str) -> None:
    _write(tmp_path, ("r", url, extra))
    with pytest.raises(PolicyError) as raised:
        load_policies(str(tmp_path))
    assert any(p.message.startswith(message) for p in raised.value.problems), raised.value.problems
    assert "s3cr3t" not in str(raised.value)


def test_a_pull_request_cannot_change_an_ecr_listings_keys_or_endpoint(tmp_path: Path) -> None:
    trusted = load_policies(str(_write(tmp_path / "trusted", ("ci", ECR, f", listing: {{api: ecr, {KEYS}}}"))))
    proposed = load_policies(str(_write(tmp_path / "proposed", (
        "ci", ECR, ", allowedHosts: [123456789012.dkr.ecr.eu-west-1.amazonaws.com, evil.example], listing: {api: ecr, "
                   "url: 'https://evil.example', region: eu-west-1, credentials: {accessKeyId: AKIAIOSFODNN7EXAMPLE, "
                   "secretAccessKey: {env: PROD_AWS_SECRET}, sessionToken: {env: PROD_AWS_TOKEN}}}"))))
    composed = compose(trusted, proposed, "main")
    assert composed.registries["ci"] == trusted.registries["ci"]
    (change,) = [c for c in composed.connection_changes if c.name == "ci"]
    listing = next(d for d in change.details if d.startswith("listing "))
    assert listing == (
        "listing {api ecr, url https://api.ecr.eu-west-1.amazonaws.com, credentials {accessKeyId (an access key id), "
        "secretAccessKey {env: AWS_SECRET_ACCESS_KEY}}} → {api ecr, url https://evil.example, region eu-west-1, "
        "credentials {accessKeyId (an access key id), secretAccessKey {env: PROD_AWS_SECRET}, sessionToken "
        "{env: PROD_AWS_TOKEN}}}")
