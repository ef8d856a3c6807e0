"""Scores: image, perceptual, temporal and keypoint metrics, the evaluation of videos, the
self-reconstruction protocol and the HTML report."""
