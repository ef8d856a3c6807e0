"""Poses: the `PoseSequence` value, skeletons, extraction, import, smoothing, normalization and
stick-figure rendering. Pure functions of arrays where possible; no project folder here."""
