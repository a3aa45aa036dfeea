"""Wording of the notes tiling writes into ``process_list.csv``'s ``reason`` column that later code reads back.

Its own module so that both the writer (``job``, whose imports make the tiling code fingerprint) and the reader
(``process_list``, which must stay out of it: an edit there must not re-tile every slide) share one definition.
"""

from __future__ import annotations

# A done slide's reason starts with this when part of the file could not be decoded at any pyramid level (its
# tiles there were dropped: ``job.drop_unreadable``); an intact slide's reason is empty.
DAMAGED_PREFIX = "damaged: "
