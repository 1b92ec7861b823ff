"""A tag list that repeats itself, within a page and across pages: each tag is decided once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.hostile.server import HostileServer, reply, routes
from tests.hostile.test_registry_faults import JSON, assert_clean, plan, registry_rows, repo_of_record, server

__all__ = ["server"]  # the fixture, used by name


def test_duplicate_tags_in_a_list_and_across_pages_are_decided_once(server: HostileServer, tmp_path: Path) -> None:
    def tags(handler, request, match) -> None:  # type: ignore[no-untyped-def]
        if "last=" not in request.path:  # page 1, then page 2 repeating it
            reply(handler, 200, json.dumps({"name": "team/web", "tags": ["v1", "build-1", "v1"]}).encode(),
                  {**JSON, "Link": '</v2/team/web/tags/list?n=3&last=v1>; rel="next"'})
        else:
            reply(handler, 200, json.dumps({"name": "team/web", "tags": ["build-1", "v1", "build-2"]}).encode(), JSON)

    server.answer = routes(registry_rows(tags=tags))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url))
    assert_clean(finished)
    assert finished.exit_code == 0, finished.stderr
    actions = json.loads(finished.stdout)["actions"]
    per_tag = Counter(t for a in actions for t in ([a["target"].rsplit(":", 1)[1]] if "@" not in a["target"]
                                                   else a["tags"]))
    assert set(per_tag) == {"v1", "build-1", "build-2"} and set(per_tag.values()) == {1}, actions
