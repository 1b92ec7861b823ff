"""Registry ``spec.listing``: the schema, its defaults, what validate refuses, and pull-request mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.policy import PolicyError, load_policies
from reconcile.policy.model import Listing
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
    ("https://r.example.com", ", listing: {api: ecr}",
     "/spec/listing/api: 'ecr' is not one of: harbor, gitlab, dockerhub"),
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
