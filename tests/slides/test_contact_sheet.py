"""Contact sheets of a cohort's masks: order (failed, then fewest tiles), paging, the legend crop, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from histcode.errors import HistcodeError
from histcode.slides.contact_sheet import (
    CELL_PX,
    PAD_PX,
    SheetInputError,
    _cell,
    _picture,
    read_entries,
    render_pages,
    write_contact_sheets,
)
from histcode.slides.process_list import PROCESS_LIST_COLUMNS
from histcode.slides.render import _legend

COLOUR = (10, 120, 200)  # BGR of the fake slide pictures


def _cohort(tmp_path: Path) -> tuple[Path, Path]:
    """A process list of five slides (one failed, one whose mask PNG is missing) and the masks of the others, each
    drawn as render_mask lays it out: the picture, then its legend strip."""
    rows = [("s_a", "done", 50, ""), ("s_b", "done", 5, ""), ("s_c", "failed", 0, "cannot open: not a slide"),
            ("s_d", "done", 20, ""), ("s_e", "done", 5, "")]
    plist, masks = tmp_path / "process_list.csv", tmp_path / "masks"
    masks.mkdir()
    with open(plist, "w", newline="") as f:
        w = csv.DictWriter(f, PROCESS_LIST_COLUMNS)
        w.writeheader()
        for slide, status, n, reason in rows:
            w.writerow({"slide": slide, "status": status, "n_tiles": n, "reason": reason,
                        "tissue_area_mm2": 1.5 if status == "done" else "",
                        "tile_size_level0": 64 if slide == "s_b" else 256})  # s_b: a 2 µm/px scan
            if status == "done" and slide != "s_d":
                pic = np.full((300, 400, 3), COLOUR, np.uint8)
                cv2.imwrite(str(masks / f"{slide}.png"), np.concatenate([pic, _legend(400, slide)], axis=0))
    return plist, masks


def test_failed_and_missing_first_then_fewest_tiles(tmp_path: Path) -> None:
    entries = read_entries(*_cohort(tmp_path))
    assert [e.slide for e in entries] == ["s_c", "s_d", "s_b", "s_e", "s_a"]
    assert entries[0].mask is None and entries[0].reason == "cannot open: not a slide"
    assert entries[1].mask is None and entries[1].status == "done"  # PNG missing: shown, not dropped
    assert [e.n_tiles for e in entries[2:]] == [5, 5, 50]
    (tmp_path / "shard").mkdir()
    shard = read_entries(*_cohort(tmp_path / "shard"), only={"s_a", "s_c"})
    assert [e.slide for e in shard] == ["s_c", "s_a"]  # a job-array shard's sheet shows its own slides


def test_a_coarse_scan_is_marked_on_its_caption(tmp_path: Path) -> None:
    """With the cohort's tile_px the sheet marks a slide whose tiles were enlarged (here 4x: 64 level-0 px per
    256 px tile) in a red caption; without it, or for the others, nothing is marked."""
    plist, masks = _cohort(tmp_path)
    entries = {e.slide: e for e in read_entries(plist, masks, tile_px=256)}
    assert entries["s_b"].enlarged == 4.0 and all(e.enlarged is None for s, e in entries.items() if s != "s_b")
    assert all(e.enlarged is None for e in read_entries(plist, masks))
    red = (0, 0, 200)

    def caption_red(entry) -> int:
        cell = _cell(entry)
        return int((np.abs(cell[-20:].astype(int) - red).max(axis=2) < 60).sum())

    assert caption_red(entries["s_b"]) > 50 and caption_red(entries["s_e"]) == 0


def test_picture_drops_the_masks_own_legend(tmp_path: Path) -> None:
    """The per-slide legend strip is cut before downscaling: what is left is the slide picture only."""
    plist, masks = _cohort(tmp_path)
    entry = next(e for e in read_entries(plist, masks) if e.slide == "s_a")
    pic = _picture(entry)
    assert pic.shape == (240, CELL_PX, 3)  # 400x300 scaled to the cell's 320 px
    assert np.abs(pic.astype(int) - np.array(COLOUR)).max() <= 1


def test_pages_hold_every_slide(tmp_path: Path) -> None:
    plist, masks = _cohort(tmp_path)
    entries = read_entries(plist, masks)
    pages = render_pages(entries, "demo: tissue masks", per_page=3, cols=2)
    assert len(pages) == 2  # 5 slides, 3 per page
    assert {p.shape[1] for p in pages} == {2 * (CELL_PX + PAD_PX) + PAD_PX}
    head = _legend(pages[0].shape[1], "title").shape[0]
    y, x0, x1 = head + PAD_PX + 5, PAD_PX + 5, PAD_PX + CELL_PX + PAD_PX + 5
    assert (pages[0][y, x0] == 235).all() and (pages[0][y, x1] == 235).all()  # failed, then missing: grey cards
    assert (pages[1][y, x0] == COLOUR).all()  # page 2 starts with s_e's picture
    with pytest.raises(ValueError, match="per_page"):
        render_pages(entries, "x", per_page=0)

    written = write_contact_sheets(plist, masks, tmp_path / "out", "demo: tissue masks", per_page=3, cols=2)
    assert [p.name for p in written] == ["contact_sheet_p01.jpg", "contact_sheet_p02.jpg"]
    decoded = [cv2.imread(str(p)) for p in written]
    assert [d.shape for d in decoded] == [p.shape for p in pages]
    assert np.abs(decoded[1].astype(int) - pages[1].astype(int)).mean() < 3  # JPEG of the same page


def test_missing_process_list_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SheetInputError, match=r"process_list\.csv: no process list; tile the cohort first") as err:
        write_contact_sheets(tmp_path / "process_list.csv", tmp_path / "masks", tmp_path / "out", "x")
    assert isinstance(err.value, HistcodeError)


def test_a_page_with_a_damaged_slide_explains_its_red(tmp_path: Path) -> None:
    """A damaged slide's mask shows its unreadable regions red; the header of the page it is on gains the legend
    entry for red, the other pages keep the plain legend."""
    import dataclasses

    from histcode.slides.render import UNREADABLE_BGR

    entries = read_entries(*_cohort(tmp_path))
    entries[-1] = dataclasses.replace(entries[-1], damaged=True)  # s_a, on the second page
    pages = render_pages(entries, "demo: tissue masks", per_page=3, cols=2)
    head = _legend(pages[0].shape[1], "title").shape[0]
    red = [int(np.all(pg[:head + 40] == UNREADABLE_BGR, axis=2).sum()) for pg in pages]
    assert red[0] == 0 and red[1] > 50
