"""Human parsing maps in REMOT's six classes: label tables for external parsers, a built-in
parser from a person mask and body keypoints, a per-person colour refinement, label-map folders
and .npz files, and REMOT's global alignment of a source's figure onto a target's."""
