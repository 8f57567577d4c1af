"""Converters that are right except for one detail, for the parity checks that must catch that detail."""

from __future__ import annotations

from mlc.convert.sklearn import SklearnConverter


class ForgetsMissingValues(SklearnConverter):
    """Converts correctly except that every split sends NaN to its false branch."""

    def convert(self, loaded):
        model = super().convert(loaded)
        for node in model.graph.node:
            for attr in node.attribute:
                if attr.name == "nodes_missing_value_tracks_true":
                    attr.ints[:] = [0] * len(attr.ints)
        return model


class MovesTies(SklearnConverter):
    """Converts correctly except that x <= t becomes x < t: only rows exactly on a threshold differ."""

    def convert(self, loaded):
        model = super().convert(loaded)
        for node in model.graph.node:
            for attr in node.attribute:
                if attr.name == "nodes_modes":
                    attr.strings[:] = [b"BRANCH_LT" if m == b"BRANCH_LEQ" else m for m in attr.strings]
        return model
