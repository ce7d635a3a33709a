"""Explanations: CAM heatmaps mapped back onto the original radiograph, overlays, and the
localisation check against radiologists' boxes. Core side: imports neither train nor convert."""

from .explainer import Explainer, Explanation, resolve_layer, spatial_layers
from .localize import box_mask, centre_map, energy_inside, pointing_hit, read_boxes, score_image
from .mapping import grid_shape, to_grid, to_image
from .methods import METHODS, get_method
from .overlay import overlay_png
from .run import explain_files, localisation_check

__all__ = [
    "Explainer",
    "Explanation",
    "METHODS",
    "get_method",
    "resolve_layer",
    "spatial_layers",
    "to_grid",
    "to_image",
    "grid_shape",
    "overlay_png",
    "explain_files",
    "localisation_check",
    "read_boxes",
    "box_mask",
    "pointing_hit",
    "energy_inside",
    "centre_map",
    "score_image",
]
