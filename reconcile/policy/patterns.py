"""Tag and branch patterns: Python regexes, refused when they can backtrack catastrophically.

Tag lists are matched inside an unattended CronJob, so a pattern such as ``(a+)+$`` must be
rejected up front rather than hang a run. The check walks the tree of the stdlib's own regex
parser and is deliberately conservative: it refuses nested quantifiers (star height > 1) and
repeated alternations whose alternatives can start with the same character. Possessive repeats
(``a++``) and atomic groups (``(?>...)``) cannot backtrack, so they and their insides are allowed.
"""

from __future__ import annotations

import re
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
# Characters tried as witnesses of overlap, besides those a pattern names itself.
_SAMPLES = [chr(c) for c in range(128)] + list(
    "\u00a0\u00b2\u00e9\u00df\u0130\u0131\u017f\u0660\u06f0\u212a\u2003\u3000\u4e2d\U0001f600"
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
            # POSSESSIVE_REPEAT and ATOMIC_GROUP never backtrack into themselves: not flagged.

    def _check_repeat(self, repeat: Node, flags: int) -> None:
        _op, (_min, max_count, body) = repeat
        if max_count <= 1:
            return
        inner = _find_inner_repeat(body, outer_is_loop=_is_loop(max_count))
        if inner is not None:
            raise _Dangerous(self._nested_message(repeat, inner))
        if _is_loop(max_count):
            for branch in _branches(body):
                overlap = _overlapping_alternatives(branch, flags)
                if overlap is not None:
                    raise _Dangerous(self._overlap_message(repeat, branch, *overlap))

    def _nested_message(self, repeat: Node, inner: Node) -> str:
        op, (min_count, max_count, body) = repeat
        text = (
            f"quantifier '{_quantifier(op, min_count, max_count)}' applied to "
            f"'{self.unparse_body(body)}', which contains the repeat "
            f"'{self.unparse_node(inner)}' (nested quantifier); rewrite without nesting, "
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
            return text + f"e.g. '{self.unparse_node(flat)}'"
        possessive = (_sre.POSSESSIVE_REPEAT, (inner_min, inner_max, inner_body))
        return text + f"or make the inner repeat possessive, e.g. '{self.unparse_node(possessive)}'"

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


def _find_inner_repeat(items: Any, *, outer_is_loop: bool) -> Node | None:
    for node in items:
        op, av = node
        if op in _BACKTRACKING_REPEATS:
            min_count, max_count, _body = av
            # Under a loop even a{1,2} nests badly ((a{1,2})+ has Fibonacci-many splits).
            if _is_loop(max_count) or (outer_is_loop and max_count >= 2 and min_count < max_count):
                return node
        for child in _children(node):
            found = _find_inner_repeat(child, outer_is_loop=outer_is_loop)
            if found is not None:
                return found
    return None


def _branches(items: Any) -> list[Node]:
    found: list[Node] = []
    for node in items:
        if node[0] is _sre.BRANCH:
            found.append(node)
        for child in _children(node):
            found.extend(_branches(child))
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
    firsts = [_first(alternative, flags) for alternative in branch[1][1]]
    for i, (atoms_i, empty_i) in enumerate(firsts):
        for j in range(i + 1, len(firsts)):
            atoms_j, empty_j = firsts[j]
            if empty_i and empty_j:
                return i, j, ""
            unknown = any(a[0] == "unknown" for a in atoms_i + atoms_j)
            if unknown:
                if _is_broad(atoms_i) and _is_broad(atoms_j):
                    return i, j, None
                continue
            witness = _common_character(atoms_i, atoms_j)
            if witness is not None:
                return i, j, witness
            if _is_broad(atoms_i) and _is_broad(atoms_j):
                return i, j, None
    return None


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


def _common_character(first: list[Atom], second: list[Atom]) -> str | None:
    for ch in _candidates(first + second):
        if _contains(first, ch) and _contains(second, ch):
            return ch
    return None


def _candidates(atoms: list[Atom]) -> list[str]:
    named: list[str] = []
    for kind, arg, _flags in atoms:
        if kind in ("lit", "notlit"):
            named.append(chr(arg))
        elif kind == "in":
            for op, value in arg:
                if op is _sre.LITERAL:
                    named.append(chr(value))
                elif op is _sre.RANGE:
                    low, high = value
                    # Small ranges are tried whole; for big ones the ends and samples suffice.
                    span = range(low, high + 1) if high - low <= 2048 else (low, high)
                    named.extend(chr(c) for c in span)
    variants = [v for ch in named for v in (ch, ch.lower(), ch.upper()) if len(v) == 1]
    return list(dict.fromkeys(variants + _SAMPLES))


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
