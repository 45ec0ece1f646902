"""Storyboard nodes: script → shot list (JSON, contact sheet, camera move), and back from JSON."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import IO, Custom, Float, Image, Int, Node, Output, Schema, String, ValidationError
from nodeloom.nodes.video._common import CAMERA_MOVE, STORYBOARD, to_frames, to_image
from nodeloom.ops.camera import CameraMove
from nodeloom.ops.storyboard import Storyboard as Board
from nodeloom.ops.storyboard import parse_script
from nodeloom.ops.video_plots import render_contact_sheet

__all__ = ["Storyboard", "StoryboardCamera", "StoryboardContactSheet", "StoryboardFromJSON"]

_EXAMPLE = """An establishing aerial view of the city at dawn.
Mara walks down the crowded street.
Her face tightens as she notices the note.
MARA: "We were never supposed to find this place."
The camera circles her as the lights go out. [low angle]
[CU, push in, 3s] She reaches for the door."""


def _move(board: Board) -> CameraMove:
    frames = sum(s.frames(board.fps) for s in board.shots)
    return CameraMove(frames, board.camera_path, {"storyboard": [s.camera_spec(board.fps) for s in board.shots]})


def storyboard_outputs() -> list[Output]:
    return [
        Output(STORYBOARD, "storyboard", tooltip="The shot list."),
        Output(IO.STRING, "json", tooltip="The shot list as JSON (loads back with Storyboard From JSON)."),
        Output(IO.IMAGE, "contact_sheet", tooltip="The board drawn as panels with captions."),
        Output(CAMERA_MOVE, "camera", tooltip="Every shot's camera move back to back."),
        Output(IO.INT, "frames", tooltip="Total length in frames."),
        Output(IO.STRING, "prompts", tooltip="One prompt per shot, one per line."),
    ]


def storyboard_values(board: Board, columns: int) -> tuple[Any, ...]:
    sheet = render_contact_sheet(board, columns=columns)
    total = sum(s.frames(board.fps) for s in board.shots)
    prompts = "\n".join(s.prompt for s in board.shots)
    return board, board.to_json(), to_image(sheet), _move(board), total, prompts


class Storyboard(Node):
    """Turn a short script, in English, Chinese or both, into a shot list: one shot per line
    (or per paragraph).

    Shot size, angle, camera move and duration come from directions in brackets
    (``[CU, low angle, push in, 3s]``, ``【特写，推，2秒】``, ``(全景镜头,2秒)``), then camera
    terms in the text (``特写``, ``环绕``, ``close-up``), then documented keyword rules (e.g.
    "face" → CU, "from below" → low angle, "circles" → orbit); dialogue (``NAME: line``,
    ``名字：“台词”`` or quotes) gets a medium close-up long enough to be spoken. Each shot's
    rules say what decided it, and which term won when terms disagree.
    """

    SCHEMA = Schema(
        "Storyboard",
        display_name="Storyboard (Script → Shots)",
        category="video/storyboard",
        inputs=[
            String("script", _EXAMPLE, multiline=True,
                   tooltip="One beat per line, in English or Chinese; `[...]`, `【...】` or term-only `(...)` "
                           "direct the shot; `#` comments."),
            Float("fps", 24.0, min=1.0, max=240.0, tooltip="Frame rate for frame counts."),
            Float("default_duration", 2.0, min=0.1, max=600.0, tooltip="Seconds per shot without dialogue or override."),
            String("style", "", tooltip="Appended to every prompt (e.g. `cinematic, 35mm film`)."),
            Int("columns", 3, min=1, max=12, tooltip="Panels per row on the contact sheet."),
        ],
        outputs=storyboard_outputs(),
    )

    @classmethod
    def execute(cls, script: str, fps: float = 24.0, default_duration: float = 2.0, style: str = "",
                columns: int = 3) -> tuple[Any, ...]:
        board = parse_script(script, fps=fps, default_duration=default_duration, style=style)
        return storyboard_values(board, columns)


class StoryboardFromJSON(Node):
    """Load a shot list saved as JSON by the Storyboard node (edit it by hand in between)."""

    SCHEMA = Schema(
        "StoryboardFromJSON",
        display_name="Storyboard From JSON",
        category="video/storyboard",
        inputs=[String("json", "", multiline=True, tooltip="The storyboard JSON."),
                Int("columns", 3, min=1, max=12, tooltip="Panels per row on the contact sheet.")],
        outputs=storyboard_outputs(),
    )

    @classmethod
    def execute(cls, json: str, columns: int = 3) -> tuple[Any, ...]:
        return storyboard_values(Board.from_json(json), columns)


class StoryboardContactSheet(Node):
    """Draw the board with your own frames in the panels (one image per shot, or spread)."""

    SCHEMA = Schema(
        "StoryboardContactSheet",
        display_name="Storyboard Contact Sheet",
        category="video/storyboard",
        inputs=[
            Custom(STORYBOARD, "storyboard", tooltip="The shot list."),
            Image("images", optional=True, tooltip="Frames for the panels (without: framing sketches)."),
            Int("columns", 3, min=1, max=12, tooltip="Panels per row."),
            Int("panel_width", 320, min=64, max=2048, tooltip="Width of each panel in pixels."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The contact sheet.")],
    )

    @classmethod
    def execute(cls, storyboard: Board, images: Any = None, columns: int = 3, panel_width: int = 320) -> tuple[Any]:
        frames = to_frames(images) if images is not None else None
        return (to_image(render_contact_sheet(storyboard, frames, columns=columns, panel_width=panel_width)),)


class StoryboardCamera(Node):
    """The camera move of one shot (1-based), or of the whole board with ``shot`` = 0."""

    SCHEMA = Schema(
        "StoryboardCamera",
        display_name="Storyboard Shot Camera",
        category="video/storyboard",
        inputs=[Custom(STORYBOARD, "storyboard", tooltip="The shot list."),
                Int("shot", 0, min=0, max=10000, tooltip="Shot number (1 = first; 0 = all shots in sequence).")],
        outputs=[Output(CAMERA_MOVE, "camera", tooltip="The camera move."),
                 Output(IO.INT, "frames", tooltip="Its length in frames."),
                 Output(IO.STRING, "prompt", tooltip="The shot's prompt (all prompts for 0).")],
    )

    @classmethod
    def execute(cls, storyboard: Board, shot: int = 0) -> tuple[Any, ...]:
        if shot == 0:
            move = _move(storyboard)
            return move, move.frames, "\n".join(s.prompt for s in storyboard.shots)
        if not 1 <= shot <= len(storyboard.shots):
            raise ValidationError(f"`shot` must be within 1..{len(storyboard.shots)} (or 0 for all), got {shot}")
        s = storyboard.shots[shot - 1]
        n = s.frames(storyboard.fps)
        move = CameraMove(n, lambda w, h: s.camera_path(storyboard.fps, w, h), s.camera_spec(storyboard.fps))
        return move, n, s.prompt
