"""`preview`: what the execution's detail shows of a large output (issue 14, item 12)."""

from __future__ import annotations

from linkflow.services._paging import decode_position
from linkflow.services.execution_outputs import PREVIEW_BYTES, PREVIEW_ITEMS, preview


class TestPreview:
    def test_a_small_output_is_shown_whole(self) -> None:
        """Up to 100 small items: all of them, and no cursor."""
        output = [{"n": n} for n in range(PREVIEW_ITEMS)]
        shown = preview(output)
        assert (shown.items, shown.total, shown.next_cursor) == (output, PREVIEW_ITEMS, None)

    def test_many_items_are_cut_at_100_with_a_cursor_after_the_last_shown(self) -> None:
        """5,000 small items: the first 100, the total, and a cursor after item 99."""
        shown = preview([{"n": n} for n in range(5000)])
        assert [item["n"] for item in shown.items] == list(range(PREVIEW_ITEMS))
        assert shown.total == 5000
        assert shown.next_cursor is not None
        assert decode_position(shown.next_cursor) == PREVIEW_ITEMS - 1

    def test_large_items_are_cut_at_about_a_mebibyte(self) -> None:
        """Items of 100 kB each: the detail stops before passing 1 MiB, so 10 are shown."""
        output = [{"n": n, "text": "x" * 100_000} for n in range(50)]
        shown = preview(output)
        assert len(shown.items) == 10  # 10 x 100,017 bytes fit in 1,048,576
        assert shown.total == 50

    def test_one_item_larger_than_the_bound_is_still_shown(self) -> None:
        """The first item is shown whatever its size: a detail never hides a whole output."""
        shown = preview([{"text": "x" * (2 * PREVIEW_BYTES)}, {"n": 1}])
        assert len(shown.items) == 1
        assert shown.next_cursor is not None
