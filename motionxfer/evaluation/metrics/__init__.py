"""Quality metrics: pure functions of frames and keypoints."""
