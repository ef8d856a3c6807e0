"""The First Order Motion Model (Siarohin et al., "First Order Motion Model for Image Animation",
NeurIPS 2019), our own implementation: an unsupervised keypoint detector with local affine
(Jacobian) motion, a dense motion network, an occlusion-aware generator, the equivariance and
perceptual losses that train them from videos alone, and relative / absolute motion transfer.

    geometry.py            the [-1, 1] coordinate grid, 2x2 inverses, backward warping
    hourglass.py           the encoder-decoder both the detector and the dense motion network use
    keypoint_detector.py   image -> K keypoints (B, K, 2) in [-1, 1] and Jacobians (B, K, 2, 2)
    dense_motion.py        keypoints -> dense backward flow (B, h, w, 2) and occlusion (B, 1, h, w)
    generator.py           source image + dense motion -> the driving frame, RGB in [0, 1]
    transforms.py          random thin-plate-spline deformations for the equivariance losses
    losses.py              all loss terms and their weights
    motion.py              relative and absolute motion transfer (pure functions)
    model.py               AnimatorConfig, its presets, and the Animator holding the networks

Coordinates are (x, y) in [-1, 1], x along the width, with -1 and 1 the centres of the first and
last pixels (`grid_sample(..., align_corners=True)`) everywhere in this package.
"""
