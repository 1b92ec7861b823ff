"""``reconcile validate``: every problem of the repo-of-record at once, as ``file:line``."""

from __future__ import annotations

import json
import sys

import click

from reconcile.cli import Settings, cli, common_options


@cli.command()
@common_options
@click.option("--format", "output", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, envvar="RECONCILE_VALIDATE_FORMAT",
              help="text: 'path:line: Kind/name: message' lines; json: a list of objects; "
                   "github: workflow-command annotations for GitHub Actions.")
def validate(settings: Settings, output: str) -> None:
    """Check the repo-of-record: schemas, references, pipelines, patterns, hostile YAML.

    Exit status 0 when valid, 1 when anything is wrong (all problems are listed, not just the
    first). Warnings (such as a keep rule whose order can rank none of the tags its pattern
    selects) are listed too but do not fail validation.
    """
    from reconcile.policy import SourceError, validate_repo  # the loader loads with the command, not --help

    try:
        result = validate_repo(settings.repo, settings.ref)
    except SourceError as e:
        raise click.ClickException(str(e)) from None
    snapshot = result.snapshot
    if snapshot.uncommitted_changes and snapshot.commit is not None:  # (only a commit's work tree has any)
        click.echo(f"note: read {settings.repo} at commit {snapshot.commit[:12]}; uncommitted "
                   "changes there are not validated (commit them, or pass --ref)", err=True)
    if output == "json":
        click.echo(json.dumps({
            "valid": result.ok, "commit": snapshot.commit, "documents": result.documents,
            "problems": [{"path": p.path, "line": p.line, **({"column": p.column} if p.column else {}),
                          "subject": p.subject, "severity": p.severity, "message": p.message}
                         for p in result.problems]}, indent=2))
    elif output == "github":
        for p in result.problems:
            text = f"{p.subject}: {p.message}" if p.subject else p.message
            column = f",col={p.column}" if p.column else ""
            click.echo(f"::{p.severity} file={p.path},line={p.line}{column}::{_escape(text)}")
    else:
        for problem in result.problems:
            click.echo(str(problem))
    at = f" at commit {snapshot.commit[:12]}" if snapshot.commit else ""
    warned = f"; {len(result.warnings)} warning{'s' * (len(result.warnings) != 1)}" if result.warnings else ""
    if not result.ok:
        errors = result.errors
        files = len({p.path for p in errors})
        click.echo(f"{len(errors)} problem{'s' * (len(errors) != 1)}{warned} in "
                   f"{files} file{'s' * (files != 1)}{at}", err=True)
        sys.exit(1)
    assert result.policies is not None  # no errors: the policies were built
    counts = ", ".join(f"{n} {kind}" for kind, n in result.policies.counts().items() if n)
    ignored = f"; {result.ignored} other YAML documents ignored" if result.ignored else ""
    click.echo(f"valid: {result.documents} documents ({counts or 'none'}){at}{ignored}{warned}", err=True)


def _escape(text: str) -> str:
    # GitHub workflow commands end at a newline and use % escapes.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
