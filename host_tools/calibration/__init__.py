"""Calibration from a laptop: sensor specifications, fits, point collection and certificates."""
