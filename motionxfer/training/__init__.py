"""Pure training components from "Do as I Do: Pose Guided Human Motion Copy" (Wu et al., 2024).

- `gromov_wasserstein`: entropic Gromov-Wasserstein in torch, and losses that compare the structure
  of a pose with the structure of an appearance (or of a generated appearance with a real one).
- `episodic_memory`: per-frame memory of recent errors, and a seeded replay of the worst frames.
- `part_crops`: square, smoothed crop boxes for the face, hands and feet; differentiable crops;
  face landmark heatmaps.

Nothing here reads files or knows about the training loop; the trainer wires these in.
"""
