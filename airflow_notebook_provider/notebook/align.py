"""Align two sequences (a notebook's cells by key, a cell's lines) in near-linear time, for ``notebook.compare``.

difflib's ``SequenceMatcher`` searches for the longest matching block again and again: fine for a notebook of a
hundred cells, quadratic (or worse) for thousands of cells whose sources repeat, which is what two runs of an
nbformat 4.4 notebook are (each run gives every cell a fresh id, so cells pair up by source). So:

- a small pair (product of the lengths up to ``WHOLE``) goes to ``SequenceMatcher`` as before: normal notebooks
  and outputs align exactly as they always did;
- a larger one: the common head and tail match, then, patience-diff style, the items that occur once on each side
  become anchors, kept in order by a longest increasing subsequence, and each gap between anchors is aligned the
  same way;
- a gap up to ``GAP`` (product of lengths) goes to ``SequenceMatcher``; a larger gap with no anchor (repeated
  items only), or any gap once ``PASSES`` × (n + m) items have been scanned for anchors, is walked once: equal
  items match, else the side whose item occurs again sooner on the other side skips ahead to it.

Work: O((n + m) log(n + m)), plus at most ``GAP`` × min(gap lengths) per small gap.
"""

from __future__ import annotations

import difflib
from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence

WHOLE = 10_000
"""Largest len(a) × len(b) aligned by difflib alone (about 100 × 100): the output of the past for normal sizes."""
GAP = 1_024
"""Largest len × len of a gap between anchors handed to difflib."""
PASSES = 8
"""Anchor searches scan at most this many times (n + m) items; the gaps left then are walked once."""

Block = tuple[int, int, int]
Opcode = tuple[str, int, int, int, int]


def matching_blocks(a: Sequence[Hashable], b: Sequence[Hashable], *, autojunk: bool) -> list[Block]:
    """``SequenceMatcher.get_matching_blocks()`` in near-linear time: (i, j, size) with a[i:i+size] ==
    b[j:j+size], increasing in i and j, ending with the sentinel (len(a), len(b), 0)."""
    if len(a) * len(b) <= WHOLE:
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=autojunk)
        return [(m.a, m.b, m.size) for m in matcher.get_matching_blocks()]
    blocks: list[Block] = []
    for i, j in _pairs(a, b):
        if blocks and blocks[-1][0] + blocks[-1][2] == i and blocks[-1][1] + blocks[-1][2] == j:
            blocks[-1] = (blocks[-1][0], blocks[-1][1], blocks[-1][2] + 1)
        else:
            blocks.append((i, j, 1))
    blocks.append((len(a), len(b), 0))
    return blocks


def opcodes(blocks: Sequence[Block]) -> list[Opcode]:
    """``SequenceMatcher.get_opcodes()`` for these matching blocks."""
    i = j = 0
    answer: list[Opcode] = []
    for ai, bj, size in blocks:
        tag = "replace" if i < ai and j < bj else "delete" if i < ai else "insert" if j < bj else ""
        if tag:
            answer.append((tag, i, ai, j, bj))
        i, j = ai + size, bj + size
        if size:
            answer.append(("equal", ai, i, bj, j))
    return answer


def unified(a: Sequence[str], b: Sequence[str], context: int) -> Iterator[str]:
    """``difflib.unified_diff(a, b, lineterm="", n=context)`` without its two header lines."""
    for group in _grouped(opcodes(matching_blocks(a, b, autojunk=True)), context):
        first, last = group[0], group[-1]
        yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield from (" " + line for line in a[i1:i2])
                continue
            if tag in ("replace", "delete"):
                yield from ("-" + line for line in a[i1:i2])
            if tag in ("replace", "insert"):
                yield from ("+" + line for line in b[j1:j2])


def _grouped(codes: list[Opcode], n: int) -> Iterator[list[Opcode]]:
    """``SequenceMatcher.get_grouped_opcodes(n)``: change clusters with up to ``n`` lines of context."""
    codes = codes or [("equal", 0, 1, 0, 1)]
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if not length else start + 1},{length}"


def _pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Matched (i, j), increasing in both: head and tail, anchors, gaps (see the module's docstring)."""
    out: list[tuple[int, int]] = []
    budget = PASSES * (len(a) + len(b))
    todo = [(0, len(a), 0, len(b))]
    while todo:
        alo, ahi, blo, bhi = todo.pop()
        while alo < ahi and blo < bhi and a[alo] == b[blo]:
            out.append((alo, blo))
            alo, blo = alo + 1, blo + 1
        while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
            ahi, bhi = ahi - 1, bhi - 1
            out.append((ahi, bhi))
        if alo == ahi or blo == bhi:
            continue
        if (ahi - alo) * (bhi - blo) <= GAP:
            matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
            out.extend((alo + i + k, blo + j + k) for i, j, size in matcher.get_matching_blocks() for k in range(size))
            continue
        anchors: list[tuple[int, int]] = []
        if budget > 0:
            budget -= (ahi - alo) + (bhi - blo)
            anchors = _anchors(a, b, alo, ahi, blo, bhi)
        if not anchors:
            out.extend(_walk(a, b, alo, ahi, blo, bhi))
            continue
        i0, j0 = alo, blo
        for i, j in anchors:
            out.append((i, j))
            todo.append((i0, i, j0, j))
            i0, j0 = i + 1, j + 1
        todo.append((i0, ahi, j0, bhi))
    out.sort()
    return out


def _anchors(a: Sequence[Hashable], b: Sequence[Hashable], alo: int, ahi: int, blo: int,
             bhi: int) -> list[tuple[int, int]]:
    """Items occurring once in a[alo:ahi] and once in b[blo:bhi], as (i, j): the longest run increasing in j."""
    count_a, count_b = Counter(a[alo:ahi]), Counter(b[blo:bhi])
    where_b = {b[j]: j for j in range(blo, bhi) if count_b[b[j]] == 1}
    candidates = [(i, where_b[a[i]]) for i in range(alo, ahi) if count_a[a[i]] == 1 and a[i] in where_b]
    tails: list[int] = []  # smallest j ending an increasing run of each length
    ends: list[int] = []  # its index in candidates
    back = [-1] * len(candidates)
    for n, (_, j) in enumerate(candidates):
        k = bisect_left(tails, j)
        if k == len(tails):
            tails.append(j)
            ends.append(n)
        else:
            tails[k], ends[k] = j, n
        back[n] = ends[k - 1] if k else -1
    run: list[tuple[int, int]] = []
    n = ends[-1] if ends else -1
    while n >= 0:
        run.append(candidates[n])
        n = back[n]
    return run[::-1]


def _walk(a: Sequence[Hashable], b: Sequence[Hashable], alo: int, ahi: int, blo: int,
          bhi: int) -> Iterator[tuple[int, int]]:
    """One pass over a gap of repeated items: equal items match; otherwise an item found nowhere further on the
    other side is left unmatched, else the side whose item comes again sooner on the other side skips to it."""
    at_a: dict[Hashable, list[int]] = {}
    at_b: dict[Hashable, list[int]] = {}
    for i in range(alo, ahi):
        at_a.setdefault(a[i], []).append(i)
    for j in range(blo, bhi):
        at_b.setdefault(b[j], []).append(j)
    i, j = alo, blo
    while i < ahi and j < bhi:
        if a[i] == b[j]:
            yield i, j
            i, j = i + 1, j + 1
            continue
        in_b, in_a = _next(at_b.get(a[i]), j), _next(at_a.get(b[j]), i)
        if in_b is None and in_a is None:
            i, j = i + 1, j + 1
        elif in_b is None:  # a[i] comes nowhere further in b
            i += 1
        elif in_a is None:  # b[j] comes nowhere further in a
            j += 1
        elif in_b - j <= in_a - i:
            j = in_b
        else:
            i = in_a


def _next(positions: list[int] | None, start: int) -> int | None:
    if not positions:
        return None
    k = bisect_left(positions, start)
    return positions[k] if k < len(positions) else None
