"""The planner's calibration draws the rows it measures inside each cell of the table."""

from __future__ import annotations

import itertools

import numpy as np

from benchmarks.calibrate_planner import DESIGNS, cell_options
from runtime.planning.model import features, row_classes


def test_rows_are_drawn_inside_their_cell_and_are_the_engines_real_work():
    rng = np.random.default_rng(1)
    for engine, design in DESIGNS.items():
        shape = [len(edges) + 1 for edges in design.axes.values()]
        for cell in itertools.product(*(range(n) for n in shape)):
            rows = cell_options(engine, design.axes, cell, 3, rng, design.ranges)
            assert len(rows) == 3, (engine, cell)
            assert set(row_classes(rows, engine)) == {"early"}
            values = features(rows)
            for (name, edges), index in zip(design.axes.items(), cell, strict=True):
                bins = np.searchsorted(np.asarray(edges), values[name], side="right")
                assert set(bins) == {index}, (engine, cell, name)
