"""One plan, three renderings: rich for terminals, markdown for pull-request comments, JSON for
machines (schema: schemas/plan.schema.json). A plan holds no secret, so none can show here."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from reconcile.plan.actions import Action, ActionKind, Block, Cause
from reconcile.plan.plan import FORMAT_VERSION, Plan, count_kinds
from reconcile.policy.secrets import redact

MARKDOWN_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
_VERBS = {"prune": "to prune", "untag": "to untag", "promote": "to promote", "deploy": "to deploy",
          "rollback": "to roll back", "blocked": "blocked", "keep": "kept"}
_STYLES = {"prune": "bold red", "untag": "red", "promote": "green", "deploy": "cyan",
           "rollback": "bold magenta", "blocked": "bold yellow", "keep": "dim"}


def summary_line(plan: Plan) -> str:
    counts = plan.counts()
    parts = [f"{n} {_VERBS[kind]}" for kind, n in counts.items()]
    head = "no changes" if not plan.has_changes else f"{len(plan.changes)} change{'s' * (len(plan.changes) != 1)}"
    commit = f" at {plan.commit[:12]}" if plan.commit else ""
    return f"{head}{commit}: " + (", ".join(parts) if parts else "nothing to do")


# --- JSON ---------------------------------------------------------------------------------------

CONTENT_HASH = "contentHash"
MAX_NESTING = 16  # a plan nests 4 deep (document, actions, action, tags)
MAX_PLAN_BYTES = 64 * 1024 * 1024
_PLAN_FIELDS = {"formatVersion", "repo", "commit", "observedAt", "fingerprint", "summary", "hasChanges", "errors",
                "actions", "warnings", CONTENT_HASH}
_ACTION_FIELDS = {"policy", "kind", "target", "digestBefore", "digestAfter", "reason", "tags", "mutates", "dependsOn",
                  "block", "cause"}


def to_json(plan: Plan) -> str:
    """Deterministic: same plan, same bytes. ``contentHash`` covers everything else in it, so
    ``apply --plan`` can tell a saved plan that was edited."""
    document = plan_document(plan)
    document[CONTENT_HASH] = content_hash(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON document of a plan, without its content hash; no secret value in any of its strings
    (a registry may echo one into an error, or name a tag like one)."""
    return _redacted({
        "formatVersion": FORMAT_VERSION, "repo": plan.repo, "commit": plan.commit,
        "observedAt": plan.observed_at, "fingerprint": plan.fingerprint, "summary": plan.counts(),
        "hasChanges": plan.has_changes, "errors": list(plan.errors), "actions": [_action_json(a) for a in plan.actions],
        **({"warnings": list(plan.warnings)} if plan.warnings else {})})


_Json = TypeVar("_Json")


def _redacted(value: _Json) -> _Json:
    if isinstance(value, str):
        return redact(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [_redacted(v) for v in value]  # type: ignore[return-value]
    return value


def content_hash(document: dict[str, Any]) -> str:
    """``sha256:`` of the canonical JSON (sorted keys, no whitespace, UTF-8) of ``document``
    without its ``contentHash``."""
    canonical = json.dumps({k: v for k, v in document.items() if k != CONTENT_HASH}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _action_json(action: Action) -> dict[str, Any]:
    return {"policy": action.policy, "kind": action.kind.value, "target": action.target,
            "digestBefore": action.digest_before, "digestAfter": action.digest_after,
            "reason": action.reason, "tags": list(action.tags), "mutates": action.mutates,
            **({"dependsOn": action.depends_on} if action.depends_on else {}),
            **({"block": action.block.value} if action.block else {}),
            **({"cause": action.cause.value} if action.cause else {})}


# --- markdown -----------------------------------------------------------------------------------

def to_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """For a pull-request comment: summary, deletions and rollbacks called out, details folded,
    never over ``limit`` characters — what does not fit is counted, not silently dropped."""
    lines = [f"### reconcile plan: {summary_line(plan)}", ""]
    if plan.errors:
        lines += ["**Could not be decided:**", ""] + [f"- ⚠️ {_md(e)}" for e in plan.errors] + [""]
    if plan.warnings:
        lines += ["**Warnings:**", ""] + [f"- {_md(w)}" for w in plan.warnings] + [""]
    called_out = [a for a in plan.actions if a.kind in ("prune", "untag", "rollback", "blocked")]
    sections: list[list[str]] = []
    if called_out:
        sections.append(["**Deletions, rollbacks and blocked policies:**", ""] +
                        [f"- {_md_action(a)}" for a in called_out] + [""])
    for policy, actions in plan.by_policy().items():
        counts = ", ".join(f"{n} {_VERBS[k]}" for k, n in count_kinds(actions).items())
        body = ["| action | target | reason |", "| --- | --- | --- |"]
        body += [f"| {a.kind} | `{_md(a.target)}` | {_md(a.reason)} |" for a in actions]
        sections.append([f"<details><summary>{_md(policy)}: {counts}</summary>", "", *body, "", "</details>", ""])
    return _fit(lines, sections, limit)


def _fit(head: list[str], sections: list[list[str]], limit: int) -> str:
    text = "\n".join(head)
    kept_lines = 0
    total = sum(len(s) for s in sections)
    for section in sections:
        for line in section:
            candidate = text + "\n" + line
            if len(candidate) + 80 > limit:  # room for the note below
                omitted = total - kept_lines
                return text + f"\n\n_… {omitted} more lines omitted to stay under {limit} characters; " \
                              "run `reconcile plan` for the full plan._\n"
            text = candidate
            kept_lines += 1
    return text + "\n"


def _md_action(action: Action) -> str:
    label = "removes tags" if action.kind == "prune" else "tags"  # a promotion's or deploy's: tags it sets or holds
    extra = f" ({label}: {', '.join(action.tags)})" if action.tags else ""
    return f"**{action.kind}** `{_md(action.target)}`{_md(extra)} — {_md(action.reason)}"


def _md(text: str) -> str:
    # Table cells and list items: keep pipes and newlines from breaking the layout.
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


# --- rich ---------------------------------------------------------------------------------------

def to_rich(plan: Plan) -> RenderableType:
    """Summary counts first, then a table per policy; deletions highlighted."""
    parts: list[RenderableType] = [Text(summary_line(plan), style="bold")]
    for error in plan.errors:
        parts.append(Text(f"could not be decided: {error}", style="bold yellow"))
    for warning in plan.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    for policy, actions in plan.by_policy().items():
        table = Table(title=policy, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
        table.add_column("action", no_wrap=True)
        table.add_column("target", overflow="fold")
        table.add_column("reason", overflow="fold")
        for action in actions:
            style = _STYLES[action.kind]
            target = action.target + (f"\n(tags: {', '.join(action.tags)})" if action.tags else "")
            table.add_row(Text(action.kind, style=style), Text(target, style=style if action.mutates else ""),
                          Text(action.reason))
        parts.append(table)
    return Group(*parts)


class PlanFileError(ValueError):
    """Not a plan this version can apply; the message says why, without a traceback."""


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    document: dict[str, Any]  # as read, without its content hash
    claimed_hash: str  # the contentHash the file carries
    actual_hash: str  # the one its content has

    @property
    def intact(self) -> bool:
        return self.claimed_hash == self.actual_hash


def from_json(text: str) -> Plan:
    """A plan saved by ``to_json``; ValueError when it is not one this version can apply. The
    content hash is not checked here (``read_saved`` does)."""
    return _plan(_parse(text))


def read_saved(text: str) -> SavedPlan:
    """A saved plan for ``apply --plan``: well formed, of this format version, with a content hash
    (PlanFileError otherwise). Whether the hash matches is for the caller to act on (``intact``)."""
    document = _parse(text)
    claimed = document.get(CONTENT_HASH)
    if claimed is None:
        raise PlanFileError("it has no contentHash, so it cannot be checked for edits (it was not saved by this "
                            "version of `reconcile plan --out`)")
    if not isinstance(claimed, str):
        raise PlanFileError("contentHash is not a string")
    plan = _plan(document)  # its own checks first: they name the action and the field in words
    _conforms(document)
    rest = {k: v for k, v in document.items() if k != CONTENT_HASH}
    return SavedPlan(plan, rest, claimed, content_hash(rest))


def _conforms(document: dict[str, Any]) -> None:
    """The document against ``schemas/plan.schema.json``: every field's type and every kind, block
    and cause named there, before anything reads it; the first violation, where it is."""
    import jsonschema  # only apply --plan reads a plan file

    from reconcile.policy.schema import schemas_dir

    schema = json.loads((schemas_dir() / "plan.schema.json").read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "the top"
        raise PlanFileError(f"it does not follow the plan schema at {where.lstrip('.')}: {error.message[:200]}")


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _parse(text: str) -> dict[str, Any]:
    if len(text) > MAX_PLAN_BYTES:
        raise PlanFileError(f"it is over {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):  # before json.loads, which recurses
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise PlanFileError(f"it nests deeper than {MAX_NESTING} levels; a plan nests 4")
        elif token in "]}":
            depth -= 1
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError) as e:
        raise PlanFileError(f"it is not JSON: {e}") from None
    if not isinstance(document, dict) or "formatVersion" not in document:
        raise PlanFileError("it is not a reconcile plan (a JSON object with formatVersion, as `plan --out` saves)")
    if type(document["formatVersion"]) is not int or document["formatVersion"] != FORMAT_VERSION:
        raise PlanFileError(f"not a reconcile plan of format version {FORMAT_VERSION} "
                            f"(formatVersion {json.dumps(document['formatVersion'])[:40]})")
    return document


def _no_constant(name: str) -> None:
    raise PlanFileError(f"it is not a reconcile plan: {name} is not a JSON value")


def _plan(document: dict[str, Any]) -> Plan:
    _fields(document, _PLAN_FIELDS, {"repo", "commit", "observedAt", "fingerprint", "errors", "actions"}, "the plan")
    _typed(document, "repo", str)
    _typed(document, "commit", (str, type(None)))
    _typed(document, "observedAt", str)
    _typed(document, "fingerprint", str)
    errors = _strings(document, "errors")
    warnings = _strings(document, "warnings") if "warnings" in document else ()
    if not isinstance(document["actions"], list):
        raise PlanFileError("actions is not a list")
    actions = tuple(_action(a, i) for i, a in enumerate(document["actions"]))
    return Plan(document["repo"], document["commit"], document["observedAt"], actions, errors,
                document["fingerprint"], warnings)


def _action(raw: Any, index: int) -> Action:
    where = f"actions[{index}]"
    if not isinstance(raw, dict):
        raise PlanFileError(f"{where} is not an object")
    _fields(raw, _ACTION_FIELDS, {"policy", "kind", "target", "digestBefore", "digestAfter", "reason", "tags"}, where)
    kind = _member(ActionKind, raw["kind"], "action kind", where)
    for name, types in (("policy", str), ("target", str), ("digestBefore", (str, type(None))),
                        ("digestAfter", (str, type(None))), ("reason", str), ("dependsOn", (str, type(None))),
                        ("mutates", bool)):
        if name in raw:
            _typed(raw, name, types, where)
    block = _member(Block, raw["block"], "block", where) if "block" in raw else None
    cause = _member(Cause, raw["cause"], "cause", where) if "cause" in raw else None
    action = Action(raw["policy"], kind, raw["target"], raw["digestBefore"], raw["digestAfter"], raw["reason"],
                    _strings(raw, "tags", where), raw.get("dependsOn"), block, cause)
    if "mutates" in raw and raw["mutates"] != action.mutates:
        raise PlanFileError(f"{where}: mutates is {json.dumps(raw['mutates'])} for a {action.kind}")
    return action


_E = TypeVar("_E", ActionKind, Block, Cause)


def _member(enum: type[_E], value: Any, what: str, where: str) -> _E:
    """``value`` as a member of ``enum``; a PlanFileError naming the action, the field and the bad value
    otherwise (a plan this version cannot act on must not be half-understood)."""
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise PlanFileError(f"{where}: unknown {what} {json.dumps(value)[:40]} (known: {', '.join(enum)})")


def _fields(raw: dict[str, Any], known: set[str], required: set[str], where: str) -> None:
    if unknown := sorted(set(raw) - known):
        raise PlanFileError(f"{where} has unknown field {json.dumps(unknown[0])[:60]}")
    if missing := sorted(required - set(raw)):
        raise PlanFileError(f"{where} has no {missing[0]}")


def _typed(raw: dict[str, Any], name: str, types: type | tuple[type, ...], where: str = "the plan") -> None:
    if not isinstance(raw[name], types):
        raise PlanFileError(f"{where}: {name} is a {type(raw[name]).__name__}, not what a plan holds there")


def _strings(raw: dict[str, Any], name: str, where: str = "the plan") -> tuple[str, ...]:
    value = raw[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanFileError(f"{where}: {name} is not a list of strings")
    return tuple(value)
