"""Tables that fit the terminal: columns dropped in a stated order, never an id cut.

rich shrinks a table that is too wide by wrapping its wrapping columns, and when that is not
enough it cuts every column, ids included, with an ellipsis. A :class:`FittedTable` decides
before rich does: each column is either one that is never cut (``wrap=False``: ids, digests,
times, statuses: its width is its widest cell) or one that wraps and folds (``wrap=True``: down
to ``min_width``); columns with a ``drop`` rank are left out, lowest rank first, until what is left
fits the width it is given. With ``wide`` none is dropped. When even the columns that are never
dropped do not fit, the table is drawn as wide as they need: lines longer than the terminal (the
terminal wraps them), never a cut id. Print it with ``crop=False`` so the console keeps them whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rich import box
from rich.cells import cell_len
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

PADDING = 1  # right of every cell: (0, 1, 0, 0)
SEPARATOR = 1  # SIMPLE_HEAD's blank vertical between columns (none at the edges)


@dataclass
class Column:
    header: str
    wrap: bool = False  # False: never cut, as wide as its widest cell
    drop: int | None = None  # the order columns are dropped in when the table does not fit (1 first); None: never
    min_width: int = 10  # a wrapping column's narrowest
    comfort: int | None = None  # a wrapping column's width worth dropping others for (None: min_width)
    whole_words: bool = False  # a wrapping column never narrower than its longest word (ids in it stay whole)
    justify: Literal["left", "right", "center"] = "left"
    style: str = ""


@dataclass
class FittedTable:
    """A table of ``columns`` and ``rows`` (one cell per column, a ``Text``), drawn to fit."""

    columns: list[Column]
    title: str | None = None
    wide: bool = False
    rows: list[tuple[list[Text], str | None]] = field(default_factory=list)
    show_header: bool = True
    measured: list[tuple[list[Text], str | None]] | None = None  # rows widths are measured on (default: rows)

    def add_row(self, *cells: Text, style: str | None = None) -> None:
        assert len(cells) == len(self.columns), (len(cells), len(self.columns))
        self.rows.append((list(cells), style))

    @property
    def _measured(self) -> list[tuple[list[Text], str | None]]:
        return self.rows if self.measured is None else self.measured

    def natural(self, index: int) -> int:
        """The widest line of column ``index``, its header included."""
        cells = [self.columns[index].header, *(row[index].plain for row, _ in self._measured)]
        return max((cell_len(line) for cell in cells for line in cell.split("\n")), default=0)

    def _least(self, index: int, comfortable: bool) -> int:
        column = self.columns[index]
        if not column.wrap:
            return self.natural(index)
        least = column.comfort if comfortable and column.comfort is not None else column.min_width
        if column.whole_words:
            least = max(least, max((longest_word(row[index]) for row, _ in self._measured), default=0))
        return min(self.natural(index), least)

    def needed(self, indexes: Iterable[int], *, comfortable: bool = False) -> int:
        """The narrowest width the columns ``indexes`` take with none of the unwrapping ones cut
        (``comfortable``: the wrapping ones at their ``comfort``)."""
        widths = [self._least(i, comfortable) for i in indexes]
        return sum(widths) + PADDING * len(widths) + SEPARATOR * max(0, len(widths) - 1)

    def shown(self, width: int) -> list[int]:
        """The indexes of the columns shown at ``width``: all of them with ``wide``, else without the
        lowest-ranked droppable ones until the rest fit: at their comfortable widths if dropping
        gets there, else at their narrowest."""
        everything = list(range(len(self.columns)))
        if self.wide:
            return everything
        order = sorted((i for i, c in enumerate(self.columns) if c.drop is not None),
                       key=lambda i: self.columns[i].drop or 0)
        for comfortable in (True, False):
            shown = list(everything)
            for index in order:
                if self.needed(shown, comfortable=comfortable) <= width:
                    break
                shown.remove(index)
            if self.needed(shown, comfortable=comfortable) <= width:
                return shown
        return shown

    def widths(self, shown: list[int], width: int) -> dict[int, int]:
        """Each shown column's width: an unwrapping one its widest cell; the wrapping ones their
        narrowest, then what room is left shared out up to their widest: first among those never
        dropped (the narrowest first), then among the others."""
        widths = {i: self._least(i, comfortable=False) for i in shown}
        room = width - self.needed(shown)
        for kept in (True, False):
            growing = [i for i in shown if self.columns[i].wrap and (self.columns[i].drop is None) == kept]
            while room > 0:
                below = [i for i in growing if widths[i] < self.natural(i)]
                if not below:
                    break
                widths[min(below, key=lambda i: widths[i])] += 1
                room -= 1
        return widths

    def table(self, width: int) -> tuple[Table, int]:
        """The rich table drawn at ``width``, and the width to draw it at (more when it must be)."""
        shown = self.shown(width)
        if self.wide:  # every column at its widest: nothing wrapped that would fit on one line
            width = max(width, self.natural_width(shown))
        widths = self.widths(shown, width)
        table = Table(title=self.title, box=box.SIMPLE_HEAD, padding=(0, PADDING, 0, 0), show_edge=False,
                      title_justify="left", title_style="bold", show_header=self.show_header)
        for i in shown:
            column = self.columns[i]
            table.add_column(column.header, justify=column.justify, style=column.style or None,
                             no_wrap=not column.wrap, overflow="fold" if column.wrap else "ignore", width=widths[i])
        for cells, style in self.rows:
            table.add_row(*(cells[i] for i in shown), style=style)
        return table, max(width, self.needed(shown))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table, width = self.table(options.max_width)
        yield from table.__rich_console__(console, options.update_width(width))

    def natural_width(self, shown: list[int]) -> int:
        return sum(self.natural(i) for i in shown) + PADDING * len(shown) + SEPARATOR * max(0, len(shown) - 1)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        shown = self.shown(options.max_width)
        return Measurement(self.needed(shown), self.natural_width(shown))


def longest_word(text: Text) -> int:
    """The widest run of non-blanks in ``text``: what cannot be wrapped, only cut or folded (``→ X``
    counts as one: the arrow stays with what it points to)."""
    return max((cell_len(word) for word in text.plain.replace("→ ", "→_").split()), default=0)


@dataclass
class Fields:
    """``name  value`` lines, the names in a column; a value with a word (an id, a digest, a hash)
    too long for the room beside the names goes under its name, indented, instead of being folded."""

    pairs: list[tuple[str, Text]]
    gap: int = 2

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.padding import Padding

        names = max((cell_len(name) for name, _ in self.pairs), default=0)
        room = options.max_width - names - self.gap
        grid: Table | None = None
        for name, value in self.pairs:
            if longest_word(value) <= room:
                if grid is None:
                    grid = Table.grid(padding=(0, self.gap))
                    grid.add_column(style="bold", no_wrap=True, width=names)
                    grid.add_column(overflow="fold")
                grid.add_row(name, value)
                continue
            if grid is not None:
                yield grid
                grid = None
            yield Text(name, style="bold")
            yield Padding(value, (0, 0, 0, 2))
        if grid is not None:
            yield grid

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        names = max((cell_len(name) for name, _ in self.pairs), default=0)
        widest = max((cell_len(line) for _, value in self.pairs for line in value.plain.split("\n")), default=0)
        return Measurement(min(options.max_width, names + self.gap + 10), names + self.gap + widest)


@dataclass
class Either:
    """``side_by_side`` when the width is at least ``needs`` (or ``wide``: always, as wide as it
    needs), else ``stacked``: the same fields one under the other, so no id is folded."""

    side_by_side: RenderableType
    needs: int
    stacked: RenderableType
    wide: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.wide or options.max_width >= self.needs:
            yield from console.render(self.side_by_side, options.update_width(max(options.max_width, self.needs)))
        else:
            yield from console.render(self.stacked, options)
