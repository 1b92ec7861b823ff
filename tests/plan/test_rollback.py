"""Which digest `reconcile rollback` goes back to, as a table: the audit trail's history, the
workloads' retained revisions, --to and --revision, and the registry check."""

from __future__ import annotations

import pytest

from reconcile.plan.rollback import RollbackRefused, choose_rollback


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


D1, D2, D3, D9 = digest(1), digest(2), digest(3), digest(9)
WEB = "Deployment/web"
KEPT = {WEB: [(4, D1), (5, D2), (6, D3)]}  # revision 6 runs now
EVERYWHERE = {D1: True, D2: True, D3: True, D9: True}.__getitem__

CASES = [
    # id, current, history (newest first), revisions, in_stage, to_digest, to_revision -> digest, revision, notes
    ("the trail's previous digest, found in a retained revision", D3, [D3, D2, D1], KEPT, EVERYWHERE, None, None,
     D2, None, [f"{WEB}: revision 5 ran {D2[:19]}"]),
    ("the trail skips the current digest wherever it stands", D2, [D3, D2, D1], KEPT, EVERYWHERE, None, None,
     D3, None, [f"{WEB}: revision 6 ran {D3[:19]}"]),
    ("a digest the revisions no longer keep is set by digest, and said", D3, [D3, D9], KEPT, EVERYWHERE, None,
     None, D9, None, [f"{WEB}: no retained revision ran {D9[:19]} (revisions 4, 5, 6); set by digest",
                      f"{WEB}: the revision before the current one ran {D2[:19]}, which the audit trail never "
                      "deployed (changed by hand?); rolling back to the trail's last good digest"]),
    ("a manifests target has no revisions to cross-check", D3, [D3, D2], None, EVERYWHERE, None, None,
     D2, None, []),
    ("--to a digest", D3, [D3, D2], KEPT, EVERYWHERE, D1, None, D1, None, [f"{WEB}: revision 4 ran {D1[:19]}"]),
    ("--to a digest on a manifests target", D3, [], None, EVERYWHERE, D1, None, D1, None, []),
    ("--revision restores that revision's template", D3, [], KEPT, EVERYWHERE, None, 4, D1, 4, []),
    ("a registry that cannot be read is noted, not a refusal", D3, [D3, D2], None,
     {D2: "registry prod could not be read: 503"}.__getitem__, None, None, D2, None,
     [f"could not confirm the stage's repository still holds {D2[:19]}: registry prod could not be read: 503"]),
    ("what runs now unknown: the trail's newest", None, [D2, D1], None, EVERYWHERE, None, None, D2, None, []),
]


@pytest.mark.parametrize(("current", "history", "revisions", "in_stage", "to_digest", "to_revision", "digest_",
                          "revision", "notes"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_choose_rollback(current, history, revisions, in_stage, to_digest, to_revision, digest_, revision,
                         notes) -> None:
    choice = choose_rollback("prod-web", current, history, revisions, in_stage, to_digest=to_digest,
                             to_revision=to_revision)
    assert (choice.digest, choice.revision, list(choice.notes)) == (digest_, revision, notes)


# A hold: what a rollback undid (rolled back from D3 to D2, D3 held), then rolled back again.
HELD = [
    # id, current, history (newest first), held, to_digest -> digest, notes
    ("rolling back again skips the held digest", D2, [D2, D3, D1], D3, None,
     D1, [f"skipped {D3[:19]}: held, a rollback undid it", f"{WEB}: revision 4 ran {D1[:19]}"]),
    ("a held digest older than the previous one changes nothing", D3, [D3, D2, D1], D1, None,
     D2, [f"{WEB}: revision 5 ran {D2[:19]}"]),
    ("a held digest deployed twice is skipped both times", D2, [D2, D3, D3, D1], D3, None,
     D1, [f"skipped {D3[:19]}: held, a rollback undid it", f"{WEB}: revision 4 ran {D1[:19]}"]),
    ("--to the held digest is what was asked for", D2, [D2, D3, D1], D3, D3, D3, [f"{WEB}: revision 6 ran {D3[:19]}"]),
]


@pytest.mark.parametrize(("current", "history", "held", "to_digest", "digest_", "notes"),
                         [case[1:] for case in HELD], ids=[case[0] for case in HELD])
def test_choose_rollback_never_goes_back_to_the_held_digest(current, history, held, to_digest, digest_,
                                                            notes) -> None:
    choice = choose_rollback("prod-web", current, history, KEPT, EVERYWHERE, to_digest=to_digest, held_digest=held)
    assert (choice.digest, choice.revision, list(choice.notes)) == (digest_, None, notes)


def test_rolling_back_twice_with_nothing_before_is_refused_naming_the_hold() -> None:
    with pytest.raises(RollbackRefused) as refused:  # deployed D3 over D2, rolled back to D2: D3 held
        choose_rollback("prod-web", D2, [D2, D3], KEPT, EVERYWHERE, held_digest=D3)
    assert str(refused.value).startswith(
        f"the audit trail has no earlier good digest of prod-web than {D2} ({D3[:19]} is held: a rollback undid "
        "it; `reconcile release-hold prod-web` lets the next run deploy it again); name one with --to DIGEST or "
        "--revision N")


REFUSALS = [
    ("--to and --revision together", D3, [D2], KEPT, EVERYWHERE, D1, 4, "--to and --revision exclude each other"),
    ("--to something that is not a digest", D3, [D2], KEPT, EVERYWHERE, "v1.2.3", None,
     "--to v1.2.3: expected a digest, sha256: and 64 hex digits"),
    ("--to a short digest", D3, [D2], KEPT, EVERYWHERE, "sha256:abc", None, "expected a digest"),
    ("no earlier digest, revisions listed newest first", D3, [D3], KEPT, EVERYWHERE, None, None,
     f"the audit trail has no earlier good digest of prod-web than {D3}; name one with --to DIGEST or --revision N "
     f"({WEB} keeps 6: {D3[:19]}, 5: {D2[:19]}, 4: {D1[:19]})"),
    ("no history at all on a manifests target", D3, [], None, EVERYWHERE, None, None,
     f"the audit trail has no earlier good digest of prod-web than {D3}; name one with --to DIGEST"),
    ("--revision on a manifests target", D3, [], None, EVERYWHERE, None, 2,
     "--revision applies to cluster targets; a manifests target's history is its git log: use --to DIGEST"),
    ("--revision that is not retained", D3, [], KEPT, EVERYWHERE, None, 2,
     f"{WEB} has no revision 2 (revisions: 4, 5, 6)"),
    ("--revision whose image is not pinned", D3, [], {WEB: [(1, None), (2, D3)]}, EVERYWHERE, None, 1,
     "revision 1 runs an image not pinned by digest: use --to DIGEST"),
    ("--revision that differs between workloads", D3, [], {WEB: [(1, D1)], "Deployment/worker": [(1, D2)]},
     EVERYWHERE, None, 1, "revision 1 runs different digests in different workloads"),
    ("--to what already runs", D3, [], KEPT, EVERYWHERE, D3, None, f"prod-web already runs {D3}"),
    ("--revision of what already runs", D3, [], KEPT, EVERYWHERE, None, 6, f"prod-web already runs {D3}"),
    ("a pruned digest is never rolled back to", D3, [D3, D2], KEPT, {D2: False}.__getitem__, None, None,
     f"{D2} is no longer in the stage's repository (pruned?): nodes could not pull it"),
]


@pytest.mark.parametrize(("current", "history", "revisions", "in_stage", "to_digest", "to_revision", "message"),
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_rollback_refusals(current, history, revisions, in_stage, to_digest, to_revision, message) -> None:
    with pytest.raises(RollbackRefused) as refused:
        choose_rollback("prod-web", current, history, revisions, in_stage, to_digest=to_digest,
                        to_revision=to_revision)
    assert message in str(refused.value)
