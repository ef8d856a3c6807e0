"""REMOT's six parsing classes, and the label tables of external human parsers mapped onto them.

REMOT (Zhao et al., ACM MM 2022) merges a human parser's labels into six classes: background,
head (face and hair), top, bottom, shoes, and skin (arms, hands, legs, neck). The tables below
take the published label lists of LIP (Gong et al. 2017, 20 labels), ATR (Liang et al. 2015,
18 labels, in the order Self-Correction-Human-Parsing ships) and CIHP (Gong et al. 2018,
20 labels: LIP's list except that label 10 is "Torso-skin" instead of "Jumpsuits").

Choices where a label has no obvious home, stated once here:
- hat, sunglasses -> head (they sit on the head, like hair);
- glove -> skin (hands are skin in the six classes);
- dress, coat, jumpsuits, scarf -> top (they cover the torso);
- skirt, belt -> bottom; socks -> shoes (the foot);
- torso-skin -> skin; bag (ATR) -> top (carried against the body, nearer the torso than a limb).
"""

from __future__ import annotations

import numpy as np

from motionxfer.errors import BadInput

BACKGROUND, HEAD, TOP, BOTTOM, SHOES, SKIN = range(6)
CLASS_NAMES: tuple[str, ...] = ("background", "head", "top", "bottom", "shoes", "skin")
NUM_CLASSES = len(CLASS_NAMES)

# Display colours, RGB uint8, one row per class.  # (6, 3)
CLASS_COLOURS = np.array(
    [
        [0, 0, 0],        # background
        [220, 40, 40],    # head
        [40, 200, 60],    # top
        [40, 70, 220],    # bottom
        [240, 220, 40],   # shoes
        [230, 90, 220],   # skin
    ],
    dtype=np.uint8,
)

LIP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat",
    "socks", "pants", "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm",
    "left_leg", "right_leg", "left_shoe", "right_shoe",
)
CIHP_LABELS: tuple[str, ...] = LIP_LABELS[:10] + ("torso_skin",) + LIP_LABELS[11:]
ATR_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "sunglasses", "upper_clothes", "skirt", "pants", "dress",
    "belt", "left_shoe", "right_shoe", "face", "left_leg", "right_leg", "left_arm",
    "right_arm", "bag", "scarf",
)

# Every external label name, onto a six-class index.
_NAME_TO_CLASS: dict[str, int] = {
    "background": BACKGROUND,
    "hat": HEAD, "hair": HEAD, "sunglasses": HEAD, "face": HEAD,
    "upper_clothes": TOP, "dress": TOP, "coat": TOP, "jumpsuits": TOP, "scarf": TOP, "bag": TOP,
    "pants": BOTTOM, "skirt": BOTTOM, "belt": BOTTOM,
    "socks": SHOES, "left_shoe": SHOES, "right_shoe": SHOES,
    "glove": SKIN, "torso_skin": SKIN, "left_arm": SKIN, "right_arm": SKIN,
    "left_leg": SKIN, "right_leg": SKIN,
}

CONVENTIONS: dict[str, tuple[str, ...]] = {
    "lip": LIP_LABELS,
    "atr": ATR_LABELS,
    "cihp": CIHP_LABELS,
    "remot": CLASS_NAMES,
    "six": CLASS_NAMES,  # the same: label maps already in the six classes
}


def label_table(convention: str) -> np.ndarray:
    """The lookup table of `convention`: entry k is the six-class index of external label k.

    Returns (L,) uint8, L the convention's label count. Raises BadInput for an unknown
    convention.
    """
    key = convention.lower()
    if key not in CONVENTIONS:
        raise BadInput(
            f"unknown parsing convention {convention!r}",
            hint=f"use one of {', '.join(sorted(CONVENTIONS))}",
        )
    if key in ("remot", "six"):
        return np.arange(NUM_CLASSES, dtype=np.uint8)
    return np.array([_NAME_TO_CLASS[name] for name in CONVENTIONS[key]], dtype=np.uint8)


def map_labels(label_map: np.ndarray, convention: str) -> np.ndarray:
    """Map an external parser's label map onto the six classes.

    label_map: integer array of any shape, e.g. (H, W) or (T, H, W), in `convention`'s labels.
    Returns a uint8 array of the same shape in the six classes. Raises BadInput naming the
    values that `convention` does not have (a parser output in another convention, or a colour
    PNG read as labels).
    """
    label_map = np.asarray(label_map)
    if not np.issubdtype(label_map.dtype, np.integer):
        raise BadInput(
            f"a label map must hold integers, got {label_map.dtype}",
            hint="save label maps as single-channel 8-bit PNGs (palette or greyscale)",
        )
    table = label_table(convention)
    values = np.unique(label_map)
    unknown = values[(values < 0) | (values >= len(table))]
    if unknown.size:
        shown = ", ".join(str(int(v)) for v in unknown[:10])
        more = f" and {unknown.size - 10} more" if unknown.size > 10 else ""
        raise BadInput(
            f"label values {shown}{more} are not in the {convention.upper()} convention "
            f"(labels 0..{len(table) - 1})",
            hint="pass the convention the parser was trained on (lip, atr, cihp), "
            "or check that the PNGs hold label indices, not colours",
        )
    return table[label_map]


def colourize(parsing: np.ndarray) -> np.ndarray:
    """Display colours of a six-class map: (..., ) uint8 -> (..., 3) uint8 RGB."""
    return CLASS_COLOURS[np.clip(parsing, 0, NUM_CLASSES - 1)]
