"""``reconcile config``: the settings in effect and where each came from (a default, an environment
variable, a command-line option), never a secret: values that could hold one are shown as their
reference (a URL's user information as ``***``, a token by the variable that holds it).

reconcile reads no configuration file: options and ``RECONCILE_*`` variables are all there is. The
names in ``--format json`` are the library's (``Reconciler(audit_db=…)``, ``plan(only=…)``), as
sqlite-utils' command line mirrors its Python API.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import click
from click.core import ParameterSource

from reconcile import defaults
from reconcile.cli import _COMMON, Settings, _Override, cli, common_options, redact, wide_option

DEFAULT = "default"
# The common options' counterpart in the library, for --format json (None: the CLI's alone).
LIBRARY = {"repo": "Reconciler(repo)", "ref": "Reconciler(ref=)", "audit_db": "Reconciler(audit_db=)",
           "trusted_ref": "Reconciler(trusted_ref=)", "trust_ref_connections": "Reconciler(trust_ref_connections=)",
           "lock": "Reconciler(lock=)", "shard": "Reconciler(shard=)", "debug": None}
COMMAND_LIBRARY = {("plan", "only"): "Reconciler.plan(only=)", ("plan", "record"): "Reconciler.plan(record=)",
                   ("apply", "only"): "Reconciler.apply(only=)", ("apply", "saved"): "Reconciler.apply(plan)",
                   ("apply", "max_plan_age"): "Reconciler.apply(max_plan_age=)",
                   ("run", "only"): "Reconciler.run(only=)",
                   ("explain", "only"): "Reconciler.explain(only=)",
                   ("rollback", "to_digest"): "Reconciler.rollback(to_digest=)",
                   ("rollback", "revision"): "Reconciler.rollback(revision=)"}
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")  # as reconcile.policy.source.redact_url (without loading git)


@dataclass(frozen=True)
class Setting:
    name: str  # the library's name for it (a parameter), or the option's
    option: str | None  # --audit-db, or "plan --format"; None: a variable alone
    env: str | None  # the variable that sets it
    value: Any
    source: str  # "default", "environment variable NAME", "command-line option --NAME", "XDG_STATE_HOME"…
    library: str | None = None
    note: str | None = None


def shown(value: Any) -> Any:
    """A value as it may be shown: no URL user information, no secret this process knows."""
    if isinstance(value, str):
        return redact(_USERINFO.sub("***@", value))
    if isinstance(value, list | tuple):
        return [shown(v) for v in value]
    return value


def _source(ctx: click.Context, name: str) -> ParameterSource | None:
    """Where a common option's value came from: the command's own copy (after the command name) wins
    over the group's; a command line over a variable over a default."""
    found = [c.get_parameter_source(name) for c in (ctx, ctx.parent) if c is not None]
    for wanted in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        if wanted in found:
            return wanted
    return found[-1] if found else None


def common_settings(ctx: click.Context, settings: Settings) -> Iterator[Setting]:
    for name, spec in _COMMON.items():
        option, env = "--" + name.replace("_", "-"), spec.get("envvar")
        where = _source(ctx, name)
        value = getattr(settings, name)
        note = None
        if where == ParameterSource.COMMANDLINE:
            source = f"command-line option {option}"
        elif where == ParameterSource.ENVIRONMENT:
            source = f"environment variable {env}"
        else:
            source = DEFAULT
        if name == "audit_db" and value is None:
            value, source = defaults.audit_db(), defaults.audit_db_source()
            source = DEFAULT if source == DEFAULT else f"default, from {source}"
            if os.path.isfile(defaults.LEGACY_AUDIT_DB):
                note = (f"./{defaults.LEGACY_AUDIT_DB} (an older version's default) is here and not used: "
                        f"--audit-db ./{defaults.LEGACY_AUDIT_DB} keeps using it")
        if name == "ref" and value is None:
            value = "HEAD"
        if name == "trusted_ref" and value is None:
            value = "the default branch (origin/HEAD, else main)"
        if name == "shard" and value is None and os.environ.get("RECONCILE_SHARDS"):
            value = f"{os.environ.get('JOB_COMPLETION_INDEX', '?')}/{os.environ['RECONCILE_SHARDS']}"
            source = "environment variables JOB_COMPLETION_INDEX and RECONCILE_SHARDS"
        yield Setting(name, option, env, shown(value), source, LIBRARY.get(name), note)


def environment_settings() -> Iterator[Setting]:
    """What only a variable sets (the library reads these itself)."""
    yield Setting("cache_dir", None, "RECONCILE_CACHE_DIR", str(defaults.cache_dir()),
                  _variable_source(defaults.cache_dir_source()), "reconcile.defaults.cache_dir()")
    actor = os.environ.get("RECONCILE_ACTOR")
    yield Setting("actor", None, "RECONCILE_ACTOR", actor or "the OS user",
                  "environment variable RECONCILE_ACTOR" if actor else DEFAULT)
    accounts = os.environ.get(defaults.SERVICE_ACCOUNT_DIR_VARIABLE)
    yield Setting("service_account_dir", None, defaults.SERVICE_ACCOUNT_DIR_VARIABLE,
                  accounts or str(defaults.DEFAULT_SERVICE_ACCOUNT_DIR),
                  f"environment variable {defaults.SERVICE_ACCOUNT_DIR_VARIABLE}" if accounts else DEFAULT)
    # `comment`'s tokens by reference: which variable it would take one from, never the value.
    for name, variables in (("github_token", ("GITHUB_TOKEN", "GH_TOKEN")), ("gitlab_token", ("GITLAB_TOKEN",))):
        given = next((v for v in variables if os.environ.get(v, "").strip()), None)
        yield Setting(name, None, " or ".join(variables), f"{{env: {given}}}" if given else "not set",
                      f"environment variable {given}" if given else DEFAULT)


def _variable_source(source: str) -> str:
    return DEFAULT if source == DEFAULT else ("environment variable RECONCILE_CACHE_DIR"
                                              if source == "RECONCILE_CACHE_DIR" else f"default, from {source}")


def command_settings(ctx: click.Context, everything: bool) -> Iterator[Setting]:
    """Every command's own options: those a variable sets (all of them with ``everything``)."""
    common = set(_COMMON)
    for path, command in _commands(cli):
        if path == "config":
            continue
        sub = click.Context(command, info_name=path, parent=ctx.find_root())
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in common or param.name is None \
                    or param.is_eager or not param.envvar or isinstance(param, _Override):  # the group's says
                continue
            env = param.envvar if isinstance(param.envvar, str) else param.envvar[0]
            option = f"{path} {param.opts[0]}"
            name = param.opts[0].lstrip("-").replace("-", "_")
            library = COMMAND_LIBRARY.get((path, param.name))
            if os.environ.get(env):
                try:
                    value = param.type_cast_value(sub, param.value_from_envvar(sub))
                    note = None
                except click.BadParameter as e:
                    value, note = os.environ[env], f"invalid: {e.message}"
                yield Setting(name, option, env, shown(_plain(value)), f"environment variable {env}", library, note)
            elif everything:
                default = param.get_default(sub, call=True)
                yield Setting(name, option, env, shown(_plain(default)), DEFAULT, library)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if value is None or isinstance(value, bool | int | float | str | list):
        return value
    return str(value)


def _commands(group: click.Command, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command below ``group``, a group (``audit``, for its own --db) before its subcommands."""
    for name, command in sorted(getattr(group, "commands", {}).items()):
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path + " ")


def effective_settings(ctx: click.Context, settings: Settings, *, everything: bool = False) -> list[Setting]:
    return [*common_settings(ctx, settings), *environment_settings(), *command_settings(ctx, everything)]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "-"
    return str(value)


@cli.command("config")
@common_options
@click.option("--format", "output", type=click.Choice(["rich", "tsv", "json"]), envvar="RECONCILE_CONFIG_FORMAT",
              help="rich: a table (the default at a terminal); tsv: one setting a line with a header (the default "
                   "when piped); json: a list of objects, named as the library's parameters.")
@click.option("--all", "everything", is_flag=True, envvar="RECONCILE_CONFIG_ALL",
              help="Also every command's options at their defaults (without it: only those a variable sets).")
@wide_option
def config_command(settings: Settings, output: str | None, everything: bool, wide: bool) -> None:
    """Show the settings in effect and where each came from: a default, an environment variable
    (named) or a command-line option. reconcile reads no configuration file.

    Secrets are never shown: a URL's user information is ***, a token is named by the variable
    holding it ({env: GITHUB_TOKEN}). Common options go before or after `config` as for any
    command: `reconcile config --audit-db x` shows what `reconcile plan --audit-db x` would use.
    """
    from rich.console import Console

    rows = effective_settings(click.get_current_context(), settings, everything=everything)
    console = Console(highlight=False)
    output = output or ("rich" if console.is_terminal else "tsv")
    if output == "json":
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
    elif output == "tsv":
        lines = ["setting\toption\tenv\tvalue\tsource\tnote"]
        lines += ["\t".join(_text(v).replace("\t", " ").replace("\n", " ") for v in
                            (row.name, row.option, row.env, row.value, row.source, row.note)) for row in rows]
        click.echo("\n".join(lines))
    else:
        from rich.text import Text

        from reconcile.render.fit import Column, FittedTable

        # No column is dropped: each wraps, the setting's name and variable never folded (--wide
        # is taken for the other table commands' sake and changes nothing here).
        table = FittedTable([Column("setting", wrap=True, whole_words=True), Column("value", wrap=True, comfort=30),
                             Column("from", wrap=True, comfort=20)], "reconcile settings (no configuration file)",
                            wide)
        for row in rows:
            name = Text(row.option or row.env or row.name)
            if row.option and row.env:
                name.append(f"\n{row.env}", style="dim")
            value = Text(_text(row.value))
            if row.note:
                value.append(f"\n{row.note}", style="yellow")
            table.add_row(name, value, Text(row.source, style="dim" if row.source == DEFAULT else ""))
        console.print(table, crop=False)


# What only a variable sets, for the README's table (the library reads these itself).
ENVIRONMENT_ONLY = (
    ("RECONCILE_CACHE_DIR", "the cache: git mirrors, manifests and configs by digest, write-back clones",
     defaults.CACHE_DIR_SHOWN),
    ("RECONCILE_SHARDS", "N shards, with an Indexed Job's JOB_COMPLETION_INDEX as K (instead of --shard)", "-"),
    ("RECONCILE_ACTOR", "who acts, in the audit trail", "the OS user"),
    (defaults.SERVICE_ACCOUNT_DIR_VARIABLE, "the pod's service-account files",
     str(defaults.DEFAULT_SERVICE_ACCOUNT_DIR)),
)


def _default_text(param: click.Option) -> str:
    if isinstance(param.show_default, str):
        return param.show_default
    default = param.to_info_dict().get("default")  # None when unset (click's own sentinel otherwise)
    if param.is_flag or default is None or callable(default) or param.multiple:
        return "-"
    return str(default)


def variables() -> list[tuple[str, str, str, str]]:
    """Every option's variable: (name, option, the commands taking it, its default), the common
    options' first, then by command."""
    found: dict[str, tuple[str, list[str], str]] = {}
    for param in cli.params:
        if isinstance(param, click.Option) and isinstance(param.envvar, str):
            found[param.envvar] = (param.opts[0], ["every command"], _default_text(param))
    for path, command in _commands(cli):
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in _COMMON or not isinstance(param.envvar, str):
                continue
            found.setdefault(param.envvar, (param.opts[0], [], _default_text(param)))[1].append(path)
    return [(env, option, ", ".join(commands), default) for env, (option, commands, default) in found.items()]


def settings_markdown() -> str:
    """The README's table of variables (tests/test_settings.py keeps the two the same)."""
    def cell(text: str) -> str:
        return "-" if text == "-" else "`" + text.replace("|", "\\|") + "`"

    lines = ["| variable | option | commands | default |", "| --- | --- | --- | --- |"]
    lines += [f"| `{env}` | {cell(option)} | {commands} | {cell(default)} |"
              for env, option, commands, default in variables()]
    lines += ["", "| variable (no option) | what it sets | default |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | {what} | {cell(default)} |" for env, what, default in ENVIRONMENT_ONLY]
    return "\n".join(lines) + "\n"
