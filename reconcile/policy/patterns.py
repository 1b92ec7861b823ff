r"""Tag and branch patterns: Python regexes, refused when they can backtrack catastrophically.

Tag lists are matched inside an unattended CronJob, so a pattern such as ``(a+)+$`` must be
rejected up front rather than hang a run. The check walks the tree of the stdlib's own regex
parser and is deliberately conservative. It refuses:

* nested quantifiers (a repeat inside a repeat), unless every repetition of the outer repeat
  begins or ends with a mandatory single character that nothing else in the repetition can
  match: in ``(\.\d+)*`` each repetition starts with the only '.', in ``(\w+[-.])*`` it ends with
  the only '-' or '.', so the repetitions can be told apart and backtracking stays linear;
* repeated bodies that can be split in several ways, because two neighbouring variable-length
  parts can match the same character (``(\.\d+\d+)*``, ``(ab?b?)+``);
* repeated alternations whose alternatives can start with the same character.

Possessive repeats (``a++``) and atomic groups (``(?>...)``) cannot backtrack, so they and their
insides are allowed.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

# The parser re.compile itself uses. It is private (re._parser since 3.11, sre_parse before), so
# it is imported here and nowhere else; if its shape changes, only this module needs to follow.
from re import _parser as _sre
from typing import Any

MAX_PATTERN_LENGTH = 1000
# A bounded repeat with a larger maximum counts as unbounded: a{1,50} nests as badly as a+.
_LARGE_REPEAT = 10

_MAXREPEAT = _sre.MAXREPEAT
_BACKTRACKING_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)
_ALL_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_LOOKAROUNDS = (_sre.ASSERT, _sre.ASSERT_NOT)
_ZERO_WIDTH = (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT)
# Inserted after every '|' before the analysis parse: sre_parse otherwise merges 'a|ab' into
# 'a(?:|b)' and '\d|\w' into '[\d\w]', hiding the alternation the user wrote.
_MARKER = "(?=)"

_CATEGORIES = {
    _sre.CATEGORY_DIGIT: r"\d",
    _sre.CATEGORY_NOT_DIGIT: r"\D",
    _sre.CATEGORY_SPACE: r"\s",
    _sre.CATEGORY_NOT_SPACE: r"\S",
    _sre.CATEGORY_WORD: r"\w",
    _sre.CATEGORY_NOT_WORD: r"\W",
}
_BROAD_CATEGORIES = {
    _sre.CATEGORY_NOT_DIGIT,
    _sre.CATEGORY_NOT_SPACE,
    _sre.CATEGORY_NOT_WORD,
}
_ANCHORS = {
    _sre.AT_BEGINNING: "^",
    _sre.AT_BEGINNING_STRING: r"\A",
    _sre.AT_END: "$",
    _sre.AT_END_STRING: r"\Z",
    _sre.AT_BOUNDARY: r"\b",
    _sre.AT_NON_BOUNDARY: r"\B",
}
_FLAG_LETTERS = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "L"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.VERBOSE, "x"),
    (re.ASCII, "a"),
)
# Characters tried as witnesses of overlap, besides those a pattern names itself; friendly ones
# first, so that messages say '0' or 'a' rather than '\x00'.
_SAMPLES = list(
    dict.fromkeys(
        string.digits
        + string.ascii_letters
        + string.punctuation
        + " \t\n\r\x0b\x0c"
        + "".join(chr(c) for c in range(128))
        + "\u00a0\u00b2\u00e9\u00df\u0130\u0131\u017f\u0660\u06f0\u212a\u2003\u3000\u4e2d"
        + "\U0001f600"
    )
)

Node = tuple[Any, Any]  # (opcode, argument) as produced by the stdlib parser


class _Dangerous(Exception):
    pass


def compile_pattern(text: str) -> re.Pattern[str]:
    """Compile a tag/branch regex, refusing ones that do not compile or can backtrack badly."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a pattern: expected a string")
    if not text:
        raise ValueError("empty pattern matches everything; write '.*' if that is what you mean")
    if len(text) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"pattern is {len(text)} characters long; the maximum is {MAX_PATTERN_LENGTH}"
        )
    try:
        compiled = re.compile(text)
    except re.error as e:
        where = f" at position {e.pos}" if e.pos is not None else ""
        raise ValueError(f"'{text}' does not compile: {e.msg}{where}") from None
    except RecursionError:
        raise ValueError(f"'{text}' nests groups too deeply") from None
    try:
        _check_pattern(text)
    except _Dangerous as e:
        raise ValueError(f"'{text}' can backtrack catastrophically: {e}") from None
    except RecursionError:
        raise ValueError(f"'{text}' nests groups too deeply") from None
    return compiled


def _check_pattern(text: str) -> None:
    try:
        tree = _sre.parse(_mark_alternatives(text))
    except re.error:  # the marking went wrong somewhere odd: analyse what sre_parse gives us
        tree = _sre.parse(text)
    names = {number: name for name, number in tree.state.groupdict.items()}
    _Checker(names).check(tree, tree.state.flags)


def _mark_alternatives(text: str) -> str:
    out: list[str] = []
    i, in_class = 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            # A ']' right after '[' or '[^' is a literal, not the end of the class.
            skip = 1 + (text.startswith("^", i + 1))
            skip += text.startswith("]", i + skip)
            out.append(text[i : i + skip])
            i += skip
            continue
        elif text.startswith("(?#", i):
            end = text.find(")", i)
            end = len(text) - 1 if end < 0 else end
            out.append(text[i : end + 1])
            i = end + 1
            continue
        out.append(ch)
        if ch == "|" and not in_class:
            out.append(_MARKER)
        i += 1
    return "".join(out)


def _is_marker(node: Node) -> bool:
    op, av = node
    return op is _sre.ASSERT and av[0] == 1 and len(av[1]) == 0


def _is_loop(max_count: int) -> bool:
    return max_count == _MAXREPEAT or max_count > _LARGE_REPEAT


def _with_flags(flags: int, av: Any) -> int:
    _group, add_flags, del_flags, _body = av
    return (flags | add_flags) & ~del_flags


@dataclass
class _Checker:
    group_names: dict[int, str]

    def check(self, items: Any, flags: int) -> None:
        for op, av in items:
            if op in _BACKTRACKING_REPEATS:
                self._check_repeat((op, av), flags)
                self.check(av[2], flags)
            elif op is _sre.SUBPATTERN:
                self.check(av[3], _with_flags(flags, av))
            elif op is _sre.BRANCH:
                for alternative in av[1]:
                    self.check(alternative, flags)
            elif op in _LOOKAROUNDS:
                self.check(av[1], flags)
            elif op is _sre.GROUPREF_EXISTS:
                for branch in av[1:]:
                    if branch is not None:
                        self.check(branch, flags)
            # A possessive repeat or atomic group never backtracks once it has matched, but its
            # body can backtrack catastrophically while finding that first match: '(?>(a+)+b)'.
            elif op is _sre.POSSESSIVE_REPEAT:
                self.check(av[2], flags)
            elif op is _sre.ATOMIC_GROUP:
                self.check(av, flags)

    def _check_repeat(self, repeat: Node, flags: int) -> None:
        _op, (_min, max_count, body) = repeat
        if max_count <= 1:
            return
        loop = _is_loop(max_count)
        starts = _FirstSet.of(body, flags) if loop else None
        inner = _find_inner_repeat(body, flags, outer_is_loop=loop, starts=starts)
        if inner is not None:
            # Nesting is harmless when a separator tells the repetitions apart: '(\.\d+)*'.
            nodes, body_flags = _unwrap(body, flags)
            clash = _separator_clash(nodes, body_flags)
            if clash is not None:
                raise _Dangerous(self._nested_message(repeat, inner, clash))
        if loop:
            for branch, branch_flags in _branches(body, flags):
                overlap = _overlapping_alternatives(branch, branch_flags)
                if overlap is not None:
                    raise _Dangerous(self._overlap_message(repeat, branch, *overlap))
        if loop or inner is not None:
            # Even separated repetitions multiply if each can be split in several ways.
            split = _ambiguous_split(body, flags)
            if split is not None:
                raise _Dangerous(self._split_message(repeat, split))

    def _nested_message(self, repeat: Node, inner: Node, clash: _Clash) -> str:
        op, (min_count, max_count, body) = repeat
        text = (
            f"quantifier '{_quantifier(op, min_count, max_count)}' applied to "
            f"'{self.unparse_body(body)}', which contains the repeat "
            f"'{self.unparse_node(inner)}' (nested quantifier)"
        )
        inner_op, (inner_min, inner_max, inner_body) = inner
        core = _single_item(body)
        if (
            core is inner
            and max_count == inner_max == _MAXREPEAT
            and min_count <= 1
            and inner_min <= 1
        ):
            flat = (inner_op, (min(min_count, inner_min), _MAXREPEAT, inner_body))
            return text + f"; rewrite without nesting, e.g. '{self.unparse_node(flat)}'"
        if clash.separator is not None and clash.element is not None:
            what = f"{clash.witness!r}" if clash.witness else "the same characters"
            text += (
                f"; each repetition {clash.where} with '{self.unparse_node(clash.separator)}', but "
                f"'{self.unparse_node(clash.element)}' can also match {what}, so repetitions cannot "
                "be told apart"
            )
        else:
            text += (
                " and no mandatory separator telling repetitions apart (a character it cannot "
                "match, at the start or end of each repetition, like the '.' in '(\\.\\d+)*')"
            )
        if inner_op in _BACKTRACKING_REPEATS and inner_max > 1:
            possessive = (_sre.POSSESSIVE_REPEAT, (inner_min, inner_max, inner_body))
            return text + (
                "; rewrite without nesting, or make the inner repeat possessive, "
                f"e.g. '{self.unparse_node(possessive)}'"
            )
        return text + "; rewrite without nesting"

    def _split_message(self, repeat: Node, split: _Split) -> str:
        op, (min_count, max_count, body) = repeat
        text = (
            f"quantifier '{_quantifier(op, min_count, max_count)}' applied to "
            f"'{self.unparse_body(body)}', in which "
        )
        first = self.unparse_node(split.first)
        if split.second is not None:
            what = f"{split.witness!r}" if split.witness else "the same characters"
            return text + (
                f"the neighbouring variable-length parts '{first}' and "
                f"'{self.unparse_node(split.second)}' can both match {what}, so each repetition can "
                "be split between them in several ways (ambiguous repeats); merge them, or make "
                "them match different characters"
            )
        if split.empty:
            return text + (
                f"'{first}' can match the empty string in two ways, by skipping what it repeats "
                "or by repeating an empty match of it (ambiguous repeats); make what it repeats "
                "non-empty, e.g. '(a+)?' rather than '(a*)?'"
            )
        return text + (
            f"the repeat '{first}' can divide what it matches into repetitions in several ways "
            "(ambiguous repeats); begin or end what it repeats with a character nothing else in "
            "it can match"
        )

    def _overlap_message(
        self, repeat: Node, branch: Node, first: int, second: int, witness: str | None
    ) -> str:
        op, (min_count, max_count, body) = repeat
        alternatives = branch[1][1]
        if witness == "":
            clash = "can both match the empty string"
        elif witness is None:
            clash = "can start with the same character"
        else:
            clash = f"can both start with {witness!r}"
        text = (
            f"quantifier '{_quantifier(op, min_count, max_count)}' applied to "
            f"'{self.unparse_body(body)}', whose alternatives "
            f"'{self.unparse(alternatives[first])}' and '{self.unparse(alternatives[second])}' "
            f"{clash} (overlapping alternatives); "
        )
        members = [_class_members(_strip_markers(a)) for a in alternatives]
        if None not in members:
            joined = "".join(dict.fromkeys(m for m in members if m is not None))
            return text + f"use one character class instead, e.g. '[{joined}]'"
        if witness == "":
            return text + "rewrite so that at most one alternative can match the empty string"
        return text + "rewrite so that no two alternatives can start with the same character"

    # -- unparsing, for messages ---------------------------------------------------------------

    def unparse(self, items: Any) -> str:
        nodes = _strip_markers(items)
        if len(nodes) > 1:
            return "".join(
                f"(?:{self.unparse_node(n)})" if n[0] is _sre.BRANCH else self.unparse_node(n)
                for n in nodes
            )
        return "".join(self.unparse_node(n) for n in nodes)

    def unparse_body(self, items: Any) -> str:
        """A repeated body as it must be written before a quantifier (grouped if needed)."""
        nodes = _strip_markers(items)
        if len(nodes) == 1 and nodes[0][0] not in (*_ALL_REPEATS, _sre.BRANCH):
            return self.unparse_node(nodes[0])
        return f"(?:{self.unparse(items)})"

    def unparse_node(self, node: Node) -> str:
        op, av = node
        if op is _sre.LITERAL:
            return _escape(av)
        if op is _sre.NOT_LITERAL:
            return f"[^{_escape(av, in_class=True)}]"
        if op is _sre.ANY:
            return "."
        if op is _sre.IN:
            return _unparse_class(av)
        if op is _sre.AT:
            return _ANCHORS.get(av, "")
        if op is _sre.BRANCH:
            return "|".join(self.unparse(alternative) for alternative in av[1])
        if op is _sre.SUBPATTERN:
            group, add_flags, del_flags, body = av
            if group is None:
                prefix = "?" + _flag_letters(add_flags)
                prefix += "-" + _flag_letters(del_flags) if del_flags else ""
                return f"({prefix}:{self.unparse(body)})"
            name = self.group_names.get(group)
            return f"(?P<{name}>{self.unparse(body)})" if name else f"({self.unparse(body)})"
        if op in _ALL_REPEATS:
            min_count, max_count, body = av
            return self.unparse_body(body) + _quantifier(op, min_count, max_count)
        if op is _sre.ATOMIC_GROUP:
            return f"(?>{self.unparse(av)})"
        if op in _LOOKAROUNDS:
            direction, body = av
            sign = "=" if op is _sre.ASSERT else "!"
            return f"(?{'<' if direction < 0 else ''}{sign}{self.unparse(body)})"
        if op is _sre.GROUPREF:
            name = self.group_names.get(av)
            return f"(?P={name})" if name else f"\\{av}"
        if op is _sre.GROUPREF_EXISTS:
            group, yes, no = av
            ref = self.group_names.get(group, str(group))
            otherwise = f"|{self.unparse(no)}" if no is not None else ""
            return f"(?({ref}){self.unparse(yes)}{otherwise})"
        return "?"


def _strip_markers(items: Any) -> list[Node]:
    return [node for node in items if not _is_marker(node)]


def _single_item(items: Any) -> Node | None:
    """The one node a body consists of, looking through plain groups: '((a+))' -> 'a+'."""
    nodes = _strip_markers(items)
    while len(nodes) == 1 and nodes[0][0] is _sre.SUBPATTERN and not any(nodes[0][1][1:3]):
        inner = _strip_markers(nodes[0][1][3])
        if len(inner) != 1:
            break
        nodes = inner
    return nodes[0] if len(nodes) == 1 else None


def _children(node: Node) -> list[Any]:
    """Sub-sequences a backtracking search can enter (not possessive repeats, atomic groups)."""
    op, av = node
    if op in _BACKTRACKING_REPEATS:
        return [av[2]]
    if op is _sre.SUBPATTERN:
        return [av[3]]
    if op is _sre.BRANCH:
        return list(av[1])
    if op in _LOOKAROUNDS:
        return [av[1]]
    if op is _sre.GROUPREF_EXISTS:
        return [branch for branch in av[1:] if branch is not None]
    return []


def _find_inner_repeat(
    items: Any, flags: int, *, outer_is_loop: bool, starts: _FirstSet | None = None
) -> Node | None:
    r"""The first variable repeat inside a repeated body that makes it a nested quantifier.

    ``starts`` (what the repeated body can start with) is given when the outer repeat is a loop:
    an optional part that can match such a character then counts too, as in '(\d\d?)+'.
    """
    for node in items:
        op, av = node
        if op in _BACKTRACKING_REPEATS:
            min_count, max_count, body = av
            # Under a loop even a{1,2} nests badly ((a{1,2})+ has Fibonacci-many splits).
            if _is_loop(max_count) or (outer_is_loop and max_count >= 2 and min_count < max_count):
                return node
            if (
                starts is not None
                and (min_count, max_count) == (0, 1)
                and _common_char([starts, _FirstSet.from_atoms(_chars(body, flags))])[0]
            ):
                return node
        inner_flags = _with_flags(flags, av) if op is _sre.SUBPATTERN else flags
        for child in _children(node):
            found = _find_inner_repeat(child, inner_flags, outer_is_loop=outer_is_loop, starts=starts)
            if found is not None:
                return found
    return None


# -- separators and ambiguous splits -------------------------------------------------------------


@dataclass
class _Clash:
    """Why a repeated body has no separator: the candidate, what else matches it, an example."""

    separator: Node | None = None
    element: Node | None = None
    witness: str | None = None
    where: str = ""


def _unwrap(items: Any, flags: int) -> tuple[list[Node], int]:
    """The top-level sequence of a body, looking through groups that are all there is: '((ab))'."""
    nodes = _strip_markers(items)
    while len(nodes) == 1 and nodes[0][0] is _sre.SUBPATTERN:
        flags = _with_flags(flags, nodes[0][1])
        nodes = _strip_markers(nodes[0][1][3])
    return nodes, flags


def _separator_clash(nodes: list[Node], flags: int) -> _Clash | None:
    """None if every match of the sequence begins or ends with a separator, else why not.

    A separator is a mandatory element matching exactly one character, from a set that nothing
    else in the sequence can match, except further mandatory one-character elements within
    that set. Every repetition then holds the same number of separator characters, one of
    them at its start (or end), so where one repetition ends and the next begins is fixed.
    """
    consuming = [i for i, node in enumerate(nodes) if _width([node])[1] > 0]
    if not consuming:
        return _Clash()
    candidates = [(consuming[0], "begins"), (consuming[-1], "ends")]
    found: _Clash | None = None
    for index, where in candidates[: 1 if consuming[0] == consuming[-1] else 2]:
        separator_atoms = _single_char(nodes[index], flags)
        if separator_atoms is None:
            continue
        separator = _FirstSet.from_atoms(separator_atoms)
        clash = None
        for j in consuming:
            if j == index:
                continue
            own = _single_char(nodes[j], flags)
            if own is not None and _is_subset(own, separator_atoms, separator):
                continue
            overlaps, witness = _common_char([separator, _FirstSet.from_atoms(_chars([nodes[j]], flags))])
            if overlaps:
                clash = _Clash(nodes[index], nodes[j], witness, where)
                break
        if clash is None:
            return None
        found = found or clash
    return found or _Clash()


def _single_char(node: Node, flags: int) -> list[Atom] | None:
    """The character set of an element that always matches exactly one character, else None."""
    op, av = node
    if op in (_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN):
        return _first_of_node(op, av, flags)[0]
    if op is _sre.SUBPATTERN or op is _sre.ATOMIC_GROUP:
        body, flags = (av[3], _with_flags(flags, av)) if op is _sre.SUBPATTERN else (av, flags)
        nodes = _strip_markers(body)
        return _single_char(nodes[0], flags) if len(nodes) == 1 else None
    if op in _ALL_REPEATS and av[0] == av[1] == 1:
        nodes = _strip_markers(av[2])
        return _single_char(nodes[0], flags) if len(nodes) == 1 else None
    if op is _sre.BRANCH:
        atoms: list[Atom] = []
        for alternative in av[1]:
            nodes = _strip_markers(alternative)
            more = _single_char(nodes[0], flags) if len(nodes) == 1 else None
            if more is None:
                return None
            atoms.extend(more)
        return atoms
    return None


def _is_subset(atoms: list[Atom], of_atoms: list[Atom], of: _FirstSet) -> bool:
    if atoms == of_atoms:
        return True
    own = _FirstSet.from_atoms(atoms)
    if own.others or sum(high - low + 1 for low, high in own.intervals) > 256:
        return False  # too broad to enumerate: assume it reaches outside
    return all(of.contains(chr(c)) for low, high in own.intervals for c in range(low, high + 1))


@dataclass
class _Split:
    """Why a sequence can match one string in several ways."""

    first: Node
    second: Node | None = None  # with first: neighbours that can trade characters
    witness: str | None = None
    empty: bool = False  # first alone: an optional or repeated part that can match ''


def _ambiguous_split(items: Any, flags: int) -> _Split | None:
    r"""Why a sequence can match some string in several ways, if it can; None if not found.

    Three causes are recognised, anywhere in the sequence (not in possessive repeats, atomic
    groups or lookarounds, which do not backtrack once matched):

    * two variable-length parts that can trade characters: '\d+\d+', 'a?x?a?'; parts in between
      must be able to match the traded character too ('\d+0\d+' splits '1000' in two ways) or
      the empty string;
    * a repeat of something that can match the empty string: '(a*)?' matches '' skipped or once;
    * a repeat of something of variable length that no separator divides: '(\d{1,2}){1,3}'
      matches '11' as one repetition or as two.
    """
    nodes = _strip_markers(items)
    widths = [_width([node]) for node in nodes]
    sets: dict[int, _FirstSet] = {}

    def chars(k: int) -> _FirstSet:
        if k not in sets:
            sets[k] = _FirstSet.from_atoms(_chars([nodes[k]], flags))
        return sets[k]

    for i, node in enumerate(nodes):
        low, high = widths[i]
        if low != high:
            between: list[_FirstSet] = []
            for j in range(i + 1, len(nodes)):
                low_j, high_j = widths[j]
                if high_j == 0:
                    continue
                if low_j != high_j:
                    overlaps, witness = _common_char([chars(i), chars(j), *between])
                    if overlaps:
                        return _Split(node, nodes[j], witness)
                if low_j > 0:
                    between.append(chars(j))
                    if not _common_char([chars(i), *between])[0]:
                        break
        op, av = node
        if op in _BACKTRACKING_REPEATS:
            min_count, max_count, body = av
            body_low, body_high = _width(body)
            if min_count < max_count and body_low == 0 < body_high:
                return _Split(node, empty=True)
            if max_count >= 2 and body_low != body_high:
                body_nodes, body_flags = _unwrap(body, flags)
                if _separator_clash(body_nodes, body_flags) is not None:
                    return _Split(node)
        if op in _LOOKAROUNDS:
            continue
        inner_flags = _with_flags(flags, av) if op is _sre.SUBPATTERN else flags
        for child in _children(node):
            found = _ambiguous_split(child, inner_flags)
            if found is not None:
                return found
    return None


_UNBOUNDED = 1 << 40


def _width(items: Any) -> tuple[int, int]:
    """Fewest and most characters a sequence can match (most capped at _UNBOUNDED)."""
    low = high = 0
    for op, av in items:
        if op in (_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN):
            more = (1, 1)
        elif op in _ZERO_WIDTH:
            more = (0, 0)
        elif op is _sre.SUBPATTERN:
            more = _width(av[3])
        elif op is _sre.ATOMIC_GROUP:
            more = _width(av)
        elif op in _ALL_REPEATS:
            min_count, max_count, body = av
            body_low, body_high = _width(body)
            more = (min(min_count * body_low, _UNBOUNDED), min(max_count * body_high, _UNBOUNDED))
        elif op is _sre.BRANCH or op is _sre.GROUPREF_EXISTS:
            branches = av[1] if op is _sre.BRANCH else av[1:]
            spans = [_width(branch) if branch is not None else (0, 0) for branch in branches]
            more = (min(s[0] for s in spans), max(s[1] for s in spans))
        else:
            more = (0, _UNBOUNDED)  # back-references and anything unforeseen
        low, high = min(low + more[0], _UNBOUNDED), min(high + more[1], _UNBOUNDED)
    return low, high


def _chars(items: Any, flags: int) -> list[Atom]:
    """Every character a sequence can consume (lookarounds consume none)."""
    atoms: list[Atom] = []
    for op, av in items:
        if op in (_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN):
            atoms.extend(_first_of_node(op, av, flags)[0])
        elif op in _ZERO_WIDTH:
            continue
        elif op is _sre.SUBPATTERN:
            atoms.extend(_chars(av[3], _with_flags(flags, av)))
        elif op is _sre.ATOMIC_GROUP:
            atoms.extend(_chars(av, flags))
        elif op in _ALL_REPEATS:
            if av[1] > 0:
                atoms.extend(_chars(av[2], flags))
        elif op is _sre.BRANCH or op is _sre.GROUPREF_EXISTS:
            branches = av[1] if op is _sre.BRANCH else av[1:]
            for branch in branches:
                if branch is not None:
                    atoms.extend(_chars(branch, flags))
        else:
            atoms.append(("unknown", None, flags))
    return atoms


def _common_char(sets: list[_FirstSet]) -> tuple[bool, str | None]:
    """Whether one character can be in all the sets, and such a character if one was found.

    Conservative: sets that are all too broad to tell apart are assumed to share one.
    """
    for candidate in dict.fromkeys(ch for one in sets for ch in one.probes):
        if all(one.contains(candidate) for one in sets):
            return True, candidate
    return all(one.broad for one in sets), None


def _branches(items: Any, flags: int) -> list[tuple[Node, int]]:
    """Alternations a backtracking search can enter, each with the flags in force there."""
    found: list[tuple[Node, int]] = []
    for node in items:
        if node[0] is _sre.BRANCH:
            found.append((node, flags))
        inner_flags = _with_flags(flags, node[1]) if node[0] is _sre.SUBPATTERN else flags
        for child in _children(node):
            found.extend(_branches(child, inner_flags))
    return found


# -- first-character sets ----------------------------------------------------------------------

Atom = tuple[str, Any, int]  # (kind, argument, flags); kinds: lit, notlit, any, in, unknown


def _first(items: Any, flags: int) -> tuple[list[Atom], bool]:
    """The characters a sequence can start with, and whether it can match the empty string."""
    atoms: list[Atom] = []
    for op, av in items:
        more, nullable = _first_of_node(op, av, flags)
        atoms.extend(more)
        if not nullable:
            return atoms, False
    return atoms, True


def _first_of_node(op: Any, av: Any, flags: int) -> tuple[list[Atom], bool]:
    if op is _sre.LITERAL:
        return [("lit", av, flags)], False
    if op is _sre.NOT_LITERAL:
        return [("notlit", av, flags)], False
    if op is _sre.ANY:
        return [("any", None, flags)], False
    if op is _sre.IN:
        return [("in", av, flags)], False
    if op in _ZERO_WIDTH:
        return [], True
    if op is _sre.SUBPATTERN:
        return _first(av[3], _with_flags(flags, av))
    if op is _sre.ATOMIC_GROUP:
        return _first(av, flags)
    if op in _ALL_REPEATS:
        min_count, max_count, body = av
        if max_count == 0:
            return [], True
        atoms, nullable = _first(body, flags)
        return atoms, nullable or min_count == 0
    if op is _sre.BRANCH or op is _sre.GROUPREF_EXISTS:
        branches = av[1] if op is _sre.BRANCH else list(av[1:])
        atoms, nullable = [], False
        for branch in branches:
            if branch is None:
                nullable = True
                continue
            more, empty = _first(branch, flags)
            atoms.extend(more)
            nullable = nullable or empty
        return atoms, nullable
    return [("unknown", None, flags)], True  # back-references and anything unforeseen


def _overlapping_alternatives(branch: Node, flags: int) -> tuple[int, int, str | None] | None:
    """(i, j, witness) for the first two alternatives that can start the same way, if any.

    The witness is a character both can start with, "" if both can match the empty string, or
    None when the overlap is assumed because both are too broad to tell apart.
    """
    firsts = [_FirstSet.of(alternative, flags) for alternative in branch[1][1]]
    for i, first in enumerate(firsts):
        for j in range(i + 1, len(firsts)):
            overlaps, witness = first.common_start(firsts[j])
            if overlaps:
                return i, j, witness
    return None


@dataclass
class _FirstSet:
    """What one alternative can start with, prepared for cheap pairwise overlap tests."""

    atoms: list[Atom]
    nullable: bool
    intervals: list[tuple[int, int]]  # code point ranges wholly inside the set
    others: list[Atom]  # the rest, only testable one character at a time
    probes: list[str]  # characters known to be in the set, to try against other sets

    @classmethod
    def of(cls, items: Any, flags: int) -> _FirstSet:
        atoms, nullable = _first(items, flags)
        return cls.from_atoms(atoms, nullable)

    @classmethod
    def from_atoms(cls, atoms: list[Atom], nullable: bool = False) -> _FirstSet:
        intervals: list[tuple[int, int]] = []
        others: list[Atom] = []
        probes: list[str] = []
        for atom in atoms:
            kind, arg, atom_flags = atom
            if kind == "lit":
                variants = _case_variants(chr(arg), atom_flags)
                intervals.extend((ord(v), ord(v)) for v in variants)
            elif kind == "in" and not atom_flags & re.IGNORECASE and _is_plain_class(arg):
                intervals.extend((v, v) if op is _sre.LITERAL else v for op, v in arg)
            else:
                others.append(atom)
                if kind == "in" and not (arg and arg[0][0] is _sre.NEGATE):
                    for op, v in arg:
                        ends = (v,) if op is _sre.LITERAL else v if op is _sre.RANGE else ()
                        probes.extend(chr(c) for c in ends)
        for low, high in intervals:
            # Small ranges are tried whole; for big ones the ends and samples inside suffice.
            span = range(low, high + 1) if high - low <= 64 else (low, high)
            probes.extend(chr(c) for c in span)
            probes.extend(ch for ch in _SAMPLES if low <= ord(ch) <= high)
        if others:
            probes.extend(ch for ch in _SAMPLES if _contains(others, ch))
        return cls(atoms, nullable, intervals, others, list(dict.fromkeys(probes)))

    def contains(self, ch: str) -> bool:
        code = ord(ch)
        return any(low <= code <= high for low, high in self.intervals) or _contains(self.others, ch)

    @property
    def unknown(self) -> bool:
        return any(kind == "unknown" for kind, _arg, _flags in self.atoms)

    @property
    def broad(self) -> bool:
        return _is_broad(self.atoms)

    def common_start(self, other: _FirstSet) -> tuple[bool, str | None]:
        if self.nullable and other.nullable:
            return True, ""
        if self.unknown or other.unknown:
            return self.broad and other.broad, None
        for low, high in self.intervals:
            for other_low, other_high in other.intervals:
                if max(low, other_low) <= min(high, other_high):
                    return True, chr(max(low, other_low))
        for first, second in ((self, other), (other, self)):
            if second.others:
                for ch in first.probes:
                    if _contains(second.others, ch):
                        return True, ch
        return self.broad and other.broad, None


def _is_plain_class(items: Any) -> bool:
    return all(op is _sre.LITERAL or op is _sre.RANGE for op, _value in items)


def _case_variants(ch: str, flags: int) -> list[str]:
    if not flags & re.IGNORECASE:
        return [ch]
    return [v for v in dict.fromkeys((ch, ch.lower(), ch.upper(), ch.casefold())) if len(v) == 1]


def _is_broad(atoms: list[Atom]) -> bool:
    for kind, arg, _flags in atoms:
        if kind in ("any", "notlit", "unknown"):
            return True
        if kind == "in" and any(
            op is _sre.NEGATE or (op is _sre.CATEGORY and value in _BROAD_CATEGORIES)
            for op, value in arg
        ):
            return True
    return False


def _contains(atoms: list[Atom], ch: str) -> bool:
    return any(_atom_contains(atom, ch) for atom in atoms)


def _atom_contains(atom: Atom, ch: str) -> bool:
    kind, arg, flags = atom
    variants = {ch}
    if flags & re.IGNORECASE:
        variants |= {v for v in (ch.lower(), ch.upper(), ch.casefold()) if len(v) == 1}
    codes = {ord(v) for v in variants}
    if kind == "any":
        return True
    if kind == "lit":
        return arg in codes
    if kind == "notlit":
        return arg not in codes
    if kind != "in":
        return True
    negated, hit = False, False
    for op, value in arg:
        if op is _sre.NEGATE:
            negated = True
        elif op is _sre.LITERAL:
            hit = hit or value in codes
        elif op is _sre.RANGE:
            hit = hit or any(value[0] <= code <= value[1] for code in codes)
        elif op is _sre.CATEGORY:
            category = _CATEGORIES.get(value)
            ascii_only = re.ASCII if flags & re.ASCII else 0
            hit = (
                hit
                or category is None
                or any(re.fullmatch(category, v, ascii_only) is not None for v in variants)
            )
        else:
            hit = True  # unforeseen class item: assume it matches
    return hit != negated


# -- small unparsing helpers -------------------------------------------------------------------


def _quantifier(op: Any, min_count: int, max_count: int) -> str:
    if max_count == _MAXREPEAT:
        text = {0: "*", 1: "+"}.get(min_count, f"{{{min_count},}}")
    elif (min_count, max_count) == (0, 1):
        text = "?"
    elif min_count == max_count:
        text = f"{{{min_count}}}"
    else:
        text = f"{{{min_count},{max_count}}}"
    if op is _sre.MIN_REPEAT:
        return text + "?"
    if op is _sre.POSSESSIVE_REPEAT:
        return text + "+"
    return text


def _escape(code: int, *, in_class: bool = False) -> str:
    ch = chr(code)
    special = "\\]^-[" if in_class else ".^$*+?{}[]\\|()"
    if ch in special:
        return "\\" + ch
    named = {"\n": r"\n", "\t": r"\t", "\r": r"\r", "\f": r"\f", "\v": r"\v"}
    if ch in named:
        return named[ch]
    if ch.isprintable():
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _class_items(items: Any) -> str:
    parts = []
    for op, value in items:
        if op is _sre.LITERAL:
            parts.append(_escape(value, in_class=True))
        elif op is _sre.RANGE:
            parts.append(f"{_escape(value[0], in_class=True)}-{_escape(value[1], in_class=True)}")
        elif op is _sre.CATEGORY:
            parts.append(_CATEGORIES.get(value, "?"))
    return "".join(parts)


def _unparse_class(items: Any) -> str:
    negated = bool(items) and items[0][0] is _sre.NEGATE
    rest = items[1:] if negated else items
    if not negated and len(rest) == 1 and rest[0][0] is _sre.CATEGORY:
        return _CATEGORIES.get(rest[0][1], "?")
    return f"[{'^' if negated else ''}{_class_items(rest)}]"


def _class_members(nodes: list[Node]) -> str | None:
    """The inside of a character class equivalent to a one-character alternative, if any."""
    if len(nodes) != 1:
        return None
    op, av = nodes[0]
    if op is _sre.LITERAL:
        return _escape(av, in_class=True)
    if op is _sre.IN and not (av and av[0][0] is _sre.NEGATE):
        return _class_items(av)
    return None


def _flag_letters(flags: int) -> str:
    return "".join(letter for flag, letter in _FLAG_LETTERS if flags & flag)
