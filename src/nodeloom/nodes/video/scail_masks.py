"""SCAIL2ColoredMask (ComfyUI's id): SAM3 person tracks of a driving video and of reference
images rendered into the coloured identity masks a SCAIL-2 model reads (WanSCAILToVideo,
which nodeloom does not run). The work is :mod:`nodeloom.ops.scail_masks`."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import Boolean, Combo, Custom, Node, Output, Schema, String
from nodeloom.ops.scail_masks import (
    check_track_data,
    order_objects,
    parse_object_indices,
    render_identity_masks,
    render_mask_identity,
    select_objects,
)

__all__ = ["SAM3_TRACK_DATA", "SCAIL2ColoredMask"]

SAM3_TRACK_DATA = "SAM3_TRACK_DATA"
_WHITE, _BLACK = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)


def _prepare(track: dict[str, Any], object_indices: str, sort_by: str) -> dict[str, Any]:
    track = order_objects(track, sort_by)
    packed = track["packed_masks"]
    chosen = parse_object_indices(object_indices, 0 if packed is None else int(packed.shape[1]))
    return track if chosen is None else select_objects(track, chosen)


class SCAIL2ColoredMask(Node):
    """Render SAM3 tracks of the driving pose video and of the reference image(s) into the colored
    masks WanSCAILToVideo consumes. The shared `sort_by` keeps each identity on the same color in
    both outputs."""

    SCHEMA = Schema(
        "SCAIL2ColoredMask", display_name="Create SCAIL-2 Colored Mask", category="model/conditioning/wan/scail",
        experimental=True,
        inputs=[
            Custom(SAM3_TRACK_DATA, "driving_track_data",
                   tooltip="SAM3 tracks from the driving pose video; drawn as the pose_video_mask output."),
            Custom(f"{SAM3_TRACK_DATA},MASK", "ref_track_data", optional=True, display_name="reference_masks",
                   tooltip="Either SAM3 tracks of the reference image(s), where every object is its own identity "
                           "and colours follow batch order, or a plain MASK of the reference subject, drawn as one "
                           "identity."),
            String("object_indices", "", tooltip="Which people to keep, as indices separated by commas (such "
                                                 "as '0,2,3'); used for the reference and the pose video masks "
                                                 "alike. Leave empty to keep everyone."),
            Combo("sort_by", ["none", "left_to_right", "area"], default="left_to_right",
                  tooltip="Order in which palette colors are assigned (the same for reference and pose video). "
                          "Objects appearing in earlier frames come first; within a frame, left_to_right = leftmost "
                          "centroid at first appearance first, area = biggest mask first; none = SAM3's order."),
            Boolean("replacement_mode", False,
                    tooltip="False = Animation Mode (pose_video_mask on black, reference_image_mask on white). "
                            "True = Replacement Mode (pose_video_mask on white, reference_image_mask on black)."),
        ],
        outputs=[Output("IMAGE", "pose_video_mask", tooltip="The driving video's identities in color."),
                 Output("IMAGE", "reference_image_mask", tooltip="The reference identities in color (a plain "
                                                                 "background without reference data).")],
    )

    @classmethod
    def execute(cls, driving_track_data: Any, object_indices: str, sort_by: str, replacement_mode: bool,
                ref_track_data: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        driving = _prepare(check_track_data(driving_track_data, "driving_track_data"), object_indices, sort_by)
        pose = render_identity_masks(driving, _WHITE if replacement_mode else _BLACK)
        ref_bg = _BLACK if replacement_mode else _WHITE
        if ref_track_data is None:
            height, width = (int(v) for v in driving["orig_size"])
            reference = torch.tensor(ref_bg, dtype=torch.float32).expand(1, height, width, 3).clone()
        elif isinstance(ref_track_data, torch.Tensor):
            reference = render_mask_identity(ref_track_data, ref_bg)
        else:
            ref = _prepare(check_track_data(ref_track_data, "ref_track_data"), object_indices, sort_by)
            reference = render_identity_masks(ref, ref_bg)
        return pose, reference
