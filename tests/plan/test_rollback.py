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
     f"unable to find specified revision 2 in history of {WEB} (revisions: 4, 5, 6)"),
    ("--revision that is not retained offers the trail's digest", D3, [D3, D2], KEPT, EVERYWHERE, None, 2,
     f"unable to find specified revision 2 in history of {WEB} (revisions: 4, 5, 6); the audit trail's deploy "
     f"history offers --to {D2} (or no --revision: its last good digest)"),
    ("revisionHistoryLimit 0: no revision, the trail's digest offered", D3, [D3, D2], {WEB: [(7, D3)]}, EVERYWHERE,
     None, 6, f"unable to find specified revision 6 in history: {WEB} keeps no revision history "
     f"(revisionHistoryLimit: 0), the cluster has only the current one; the audit trail's deploy history offers "
     f"--to {D2}"),
    ("--revision whose image is not pinned", D3, [], {WEB: [(1, None), (2, D3)]}, EVERYWHERE, None, 1,
     "revision 1 runs an image not pinned by digest: use --to DIGEST"),
    ("--revision that differs between workloads", D3, [], {WEB: [(1, D1)], "Deployment/worker": [(1, D2)]},
     EVERYWHERE, None, 1, "revision 1 runs different digests in different workloads"),
    ("a pruned digest is never rolled back to", D3, [D3, D2], KEPT, {D2: False}.__getitem__, None, None,
     f"{D2} is no longer in the stage's repository (pruned?): nodes could not pull it"),
]


@pytest.mark.parametrize(("current", "history", "revisions", "in_stage", "to_digest", "to_revision", "message"),
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_rollback_refusals(current, history, revisions, in_stage, to_digest, to_revision, message) -> None:
    limits = {WEB: 0} if "revisionHistoryLimit" in message else None
    with pytest.raises(RollbackRefused) as refused:
        choose_rollback("prod-web", current, history, revisions, in_stage, to_digest=to_digest,
                        to_revision=to_revision, history_limits=limits)
    assert message in str(refused.value)


ALREADY = [
    # id, current, to_digest, to_revision -> already
    ("--revision of the current revision", D3, None, 6,
     "already at revision 6: skipped rollback (current template already matches revision 6)"),
    ("--to the digest that runs", D3, D3, None, f"already at {D3}: prod-web runs it; skipped rollback"),
]


@pytest.mark.parametrize(("current", "to_digest", "to_revision", "already"), [case[1:] for case in ALREADY],
                         ids=[case[0] for case in ALREADY])
def test_already_there_is_not_a_refusal(current, to_digest, to_revision, already) -> None:
    choice = choose_rollback("prod-web", current, [D3, D2], KEPT, EVERYWHERE, to_digest=to_digest,
                             to_revision=to_revision)
    assert (choice.already, choice.digest, choice.hand_edit) == (already, D3, None)


def test_already_at_a_revision_set_by_tag_is_not_refused_for_its_tag() -> None:
    choice = choose_rollback("prod-web", None, [D2], {WEB: [(1, D2), (2, None)]}, EVERYWHERE, to_revision=2)
    assert choice.already == "already at revision 2: skipped rollback (current template already matches revision 2)"


def test_a_hand_edit_since_the_last_deploy_is_named() -> None:
    choice = choose_rollback("prod-web", D9, [D3, D2], KEPT, EVERYWHERE)  # reconcile deployed D3; D9 runs
    assert choice.digest == D3 and choice.already is None
    assert choice.hand_edit == (f"hand edit: {WEB} run {D9}, but reconcile last deployed {D3}: changed since "
                                "(kubectl set image, kubectl edit, a commit?); this rollback overwrites it")


def test_no_revision_history_is_said_and_the_trail_still_offers_a_target() -> None:
    choice = choose_rollback("prod-web", D3, [D3, D2], {WEB: [(7, D3)]}, EVERYWHERE, history_limits={WEB: 0})
    assert (choice.digest, choice.revision) == (D2, None)
    assert list(choice.notes) == [f"{WEB} keeps no revision history (revisionHistoryLimit: 0): `kubectl rollout "
                                  f"undo` has nothing to go back to; set by digest to {D2[:19]} from the audit "
                                  "trail's deploy history"]
    with pytest.raises(RollbackRefused) as refused:
        choose_rollback("prod-web", D3, [D3], {WEB: [(7, D3)]}, EVERYWHERE, history_limits={WEB: 0})
    assert str(refused.value).endswith(f"; {WEB} keeps no revision history (revisionHistoryLimit: 0), so there is "
                                       "no earlier revision to go back to either")
