"""``reconcile comment``: post a markdown file (a ``plan --format markdown``) as ONE comment on a
pull request or merge request, updated in place on every later push (found by a hidden marker)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconcile.cli import cli

if TYPE_CHECKING:
    from reconcile.adapters.forge import ForgeClient
    from reconcile.policy.secrets import Secret

MAX_INPUT_BYTES = 1024 * 1024
_GITHUB = re.compile(r"([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#([1-9][0-9]{0,9})")
_GITLAB = re.compile(r"([A-Za-z0-9_.\-/]+)!([1-9][0-9]{0,9})")


@cli.command("comment")
@click.argument("markdown", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@click.option("--key", default="plan", show_default=True, envvar="RECONCILE_COMMENT_KEY",
              help="Which comment: its hidden marker is <!-- reconcile-plan:KEY -->, so several jobs (a plan "
                   "per environment) keep one comment each.")
@click.option("--github", "github", metavar="OWNER/REPO#NUMBER", envvar="RECONCILE_COMMENT_GITHUB",
              help="The GitHub pull request; default: GITHUB_REPOSITORY and the number in GITHUB_EVENT_PATH's "
                   "event. Token: GITHUB_TOKEN or GH_TOKEN; API: GITHUB_API_URL (default https://api.github.com).")
@click.option("--gitlab", "gitlab", metavar="PROJECT!IID", envvar="RECONCILE_COMMENT_GITLAB",
              help="The GitLab merge request (PROJECT: an id or GROUP/PROJECT); default: CI_PROJECT_ID and "
                   "CI_MERGE_REQUEST_IID. Token: GITLAB_TOKEN, a project access token (scope api) — CI_JOB_TOKEN "
                   "cannot post notes; API: CI_API_V4_URL (default https://gitlab.com/api/v4).")
@click.option("--api-url", metavar="URL", envvar="RECONCILE_COMMENT_API_URL",
              help="The REST API's base URL, overriding the environment's.")
@click.option("--author", metavar="LOGIN", envvar="RECONCILE_COMMENT_AUTHOR",
              help="The user the token posts as, when GET /user cannot tell (a GitHub App's token: "
                   "APP-SLUG[bot]); comments by anyone else are never edited.")
def comment_command(markdown: str, key: str, github: str | None, gitlab: str | None, api_url: str | None,
                    author: str | None) -> None:
    """Post MARKDOWN (a file, or - for stdin) as one comment on a pull request or merge request.

    The first run creates the comment; later runs (every push) update that same comment in
    place, found by its hidden first line <!-- reconcile-plan:KEY --> and by its author being the
    token's user. Comments without the marker, or by anyone else, are never touched. Prints one
    line: created, updated or unchanged, and the comment's id.

    In GitHub Actions the pull request and the token come from the environment (GITHUB_TOKEN
    needs `permissions: pull-requests: write`; its comments are by github-actions[bot]). In GitLab
    CI, from a merge request pipeline's CI_PROJECT_ID, CI_MERGE_REQUEST_IID and GITLAB_TOKEN.

    Exit status 0 when posted, 1 on any error (one line, with the HTTP status; never the token).
    """
    from reconcile.adapters.forge import ForgeError, upsert_comment  # requests loads with the command, not --help

    text = _read(markdown)
    try:
        client, default_author = _client(github, gitlab, api_url)
        try:
            posted = upsert_comment(client, key, text, author=author, fallback_author=default_author)
        finally:
            client.close()
    except ForgeError as e:
        raise click.ClickException(str(e)) from None
    url = f" {posted.comment.url}" if posted.comment.url else ""
    click.echo(f"{posted.action} comment {posted.comment.id} on {client.where}{url}")
    if posted.warning:
        click.echo(f"warning: {posted.warning}", err=True)


def _read(markdown: str) -> str:
    try:
        if markdown == "-":
            raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with Path(markdown).open("rb") as f:
                raw = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise click.ClickException(f"cannot read {markdown}: {e.strerror or type(e).__name__}") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise click.ClickException(f"{markdown}: over {MAX_INPUT_BYTES // 1024} KiB: not a comment")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:
        raise click.ClickException(f"{markdown}: not UTF-8 text")
    if not text.strip():
        raise click.ClickException(f"{markdown} is empty: nothing to post (did the plan fail?)")
    return text


def _token(*names: str) -> Secret:
    from reconcile.adapters.forge import ForgeError
    from reconcile.policy.secrets import Secret

    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return Secret(value)
    raise ForgeError(f"no token: set {' or '.join(names)}")


def _client(github: str | None, gitlab: str | None, api_url: str | None) -> tuple[ForgeClient, str | None]:
    """The forge client, and the default author (the Actions GITHUB_TOKEN's bot, which may not
    read GET /user)."""
    from reconcile.adapters.forge import ForgeError, GitHubClient, GitLabClient

    if github and gitlab:
        raise ForgeError("--github and --gitlab: give one")
    env = os.environ
    if gitlab or (not github and env.get("GITLAB_CI") and not env.get("GITHUB_ACTIONS")):
        if gitlab:
            match = _GITLAB.fullmatch(gitlab)
            if not match:
                raise ForgeError(f"--gitlab {gitlab[:100]!r}: expected PROJECT!IID, e.g. group/project!12 or 42!12")
            project, iid = match[1], int(match[2])
        else:
            project, iid_text = env.get("CI_PROJECT_ID", ""), env.get("CI_MERGE_REQUEST_IID", "")
            if not project or not iid_text.isdigit():
                raise ForgeError("not a merge request pipeline (no CI_MERGE_REQUEST_IID): pass --gitlab "
                                 "PROJECT!IID, or run in `rules: - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"`")
            iid = int(iid_text)
        if not env.get("GITLAB_TOKEN", "").strip():
            raise ForgeError("no token: set GITLAB_TOKEN to a project access token (scope api, role Reporter or "
                             "above) in a masked CI/CD variable; CI_JOB_TOKEN cannot post merge request notes")
        api = api_url or env.get("CI_API_V4_URL") or "https://gitlab.com/api/v4"
        return GitLabClient(api, project, iid, _token("GITLAB_TOKEN")), None
    if github:
        match = _GITHUB.fullmatch(github)
        if not match:
            raise ForgeError(f"--github {github[:100]!r}: expected OWNER/REPO#NUMBER, e.g. acme/policies#12")
        repo, number = match[1], int(match[2])
    elif env.get("GITHUB_REPOSITORY"):
        repo, number = env["GITHUB_REPOSITORY"], _event_number(env.get("GITHUB_EVENT_PATH"))
    else:
        raise ForgeError("where to comment? pass --github OWNER/REPO#NUMBER or --gitlab PROJECT!IID (or run in "
                         "GitHub Actions or a GitLab merge request pipeline)")
    api = api_url or env.get("GITHUB_API_URL") or "https://api.github.com"
    token = _token("GITHUB_TOKEN", "GH_TOKEN")
    default_author = "github-actions[bot]" if env.get("GITHUB_ACTIONS") == "true" else None
    return GitHubClient(api, repo, number, token), default_author


def _event_number(path: str | None) -> int:
    """The pull request's number in the event that started the workflow (pull_request,
    pull_request_target, issue_comment on a pull request)."""
    from reconcile.adapters.forge import ForgeError

    if not path:
        raise ForgeError("no GITHUB_EVENT_PATH: pass --github OWNER/REPO#NUMBER")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        event = None
    if not isinstance(event, dict):
        raise ForgeError("GITHUB_EVENT_PATH is not a readable event: pass --github OWNER/REPO#NUMBER")
    for holder in (event.get("pull_request"), event.get("issue"), event):
        if isinstance(holder, dict):
            number = holder.get("number")
            if isinstance(number, int) and not isinstance(number, bool) and number > 0:
                return number
    raise ForgeError("the event names no pull request (is the workflow `on: pull_request_target`?): pass "
                     "--github OWNER/REPO#NUMBER")
