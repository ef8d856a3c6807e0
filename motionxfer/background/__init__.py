"""The static background plate behind the target: a robust per-pixel estimate over the frames
where the person does not cover a pixel, a coverage mask, and a moving-camera check."""
