"""Storyboards: a 6-line script, keyword rules, overrides, JSON round trip, contact sheet."""

import json

import numpy as np
import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.storyboard import MOVES, SHOT_SIZES, Storyboard, parse_script
from nodeloom.ops.video_plots import render_contact_sheet, render_curves

SCRIPT = """An establishing aerial view of the city at dawn.
Mara walks down the crowded street.
Her face tightens as she notices the note.
MARA: "We were never supposed to find this place, not after all these years."
The camera circles her as the lights go out. [low angle]
[CU, push in, 3s] She reaches for the door.
"""


def test_six_lines_give_six_shots_with_expected_sizes_moves_durations():
    board = parse_script(SCRIPT, fps=24)
    assert [s.id for s in board.shots] == ["S01", "S02", "S03", "S04", "S05", "S06"]
    assert [s.size for s in board.shots] == ["EWS", "WS", "CU", "MCU", "MS", "CU"]
    assert [s.movement for s in board.shots] == ["static", "track right", "static", "static", "orbit", "push in"]
    assert [s.angle for s in board.shots] == ["eye level"] * 4 + ["low angle", "eye level"]
    # 13 words at 2.5 words/s → 5.2 s, rounded up to the half second
    assert [s.duration for s in board.shots] == [2.0, 2.0, 2.0, 5.5, 2.0, 3.0]
    assert board.shots[3].speaker == "Mara" and board.shots[3].dialogue.startswith("We were never")
    assert board.shots[5].text == "She reaches for the door."
    assert board.shots[5].rules == {"size": "override", "angle": "default", "movement": "override", "duration": "override"}
    assert board.shots[0].rules["size"] == "keyword `establishing`"
    assert board.shots[0].prompt.startswith("extreme wide shot, An establishing")
    assert [s.frames(24) for s in board.shots] == [48, 48, 48, 132, 48, 72]


def test_camera_specs_follow_the_moves():
    board = parse_script(SCRIPT, fps=24)
    assert board.shots[5].camera_spec(24) == {"preset": "zoom in", "axes": {}, "strength": 0.8,
                                               "easing": "ease_in_out", "frames": 72}
    path = board.camera_path(128, 128)
    assert path.frames == sum(s.frames(24) for s in board.shots)
    start = board.shot_starts()[5]
    assert path.zoom[start] == 1.0 and path.zoom[-1] == pytest.approx(2 ** 0.4)
    assert path.pan[board.shot_starts()[4] + 47] < 0  # the orbit turns back toward the subject


def test_json_round_trips():
    board = parse_script(SCRIPT, fps=25, style="cinematic", title="The Door")
    text = board.to_json()
    again = Storyboard.from_json(text)
    assert again.to_json() == text
    data = json.loads(text)
    assert data["version"] == 1 and data["title"] == "The Door" and data["shots"][5]["frames"] == 75
    assert all(s["prompt"].endswith("cinematic") for s in data["shots"])


def test_overrides_accept_angles_frames_and_full_names():
    board = parse_script("[extreme close-up, dutch, pan left, 36f] A clock ticks.", fps=12)
    shot = board.shots[0]
    assert (shot.size, shot.angle, shot.movement, shot.duration) == ("ECU", "dutch angle", "pan left", 3.0)


def test_paragraphs_become_beats_and_comments_are_skipped():
    script = "# act one\nA wide desert.\nThe wind howls.\n\nShe looks up at the towering ship.\nIt hums."
    board = parse_script(script)
    assert len(board.shots) == 2
    assert board.shots[1].angle == "low angle" and board.shots[1].movement == "tilt up"
    assert board.shots[0].line == 2


def test_bad_input_is_named():
    with pytest.raises(ValidationError, match="line 1: override `sideways`"):
        parse_script("[sideways] A man.")
    with pytest.raises(ValidationError, match="no lines"):
        parse_script("# only a comment\n\n")
    with pytest.raises(ValidationError, match="`version: 1`"):
        Storyboard.from_json('{"shots": []}')
    bad = parse_script("A man.").to_dict()
    bad["shots"][0]["size"] = "HUGE"
    with pytest.raises(ValidationError, match="shot 1: `size` must be one of"):
        Storyboard.from_json(bad)


def test_contact_sheet_renders_panels_and_captions():
    board = parse_script(SCRIPT)
    sheet = render_contact_sheet(board, columns=3, panel_width=160)
    assert sheet.ndim == 3 and sheet.shape[2] == 3 and sheet.dtype == np.float32
    assert sheet.shape[1] == 3 * (160 + 12) + 12
    assert sheet.min() < 0.2 and sheet.max() == 1.0  # ink on paper
    frames = np.zeros((6, 32, 48, 3), np.float32)
    frames[:, :, :, 1] = 1.0
    with_frames = render_contact_sheet(board, frames, columns=2, panel_width=96)
    green = (with_frames[..., 1] > 0.9) & (with_frames[..., 0] < 0.1)
    assert green.mean() > 0.2


def test_rule_tables_cover_what_overrides_accept():
    assert {"CU", "MCU", "EWS", "OTS", "POV"} <= set(SHOT_SIZES)
    assert {"static", "push in", "pull out", "pan left", "orbit", "crane up", "dolly zoom"} <= set(MOVES)


def test_curves_plot():
    img = render_curves({"a": np.arange(10.0), "b": np.zeros(10)}, {"a": 5.0}, {"a": [{"start": 6, "end": 9}]})
    assert img.shape == (300, 768, 3)
    red = (img[..., 0] > 0.95) & (img[..., 1] < 0.9) & (img[..., 2] < 0.9)
    assert red.any()


def test_every_rule_is_documented():
    from pathlib import Path

    from nodeloom.ops.storyboard import ANGLE_RULES, MOVE_RULES, SIZE_RULES

    doc = (Path(__file__).parents[2] / "docs" / "packs" / "video.md").read_text(encoding="utf-8")
    for table in (SIZE_RULES, ANGLE_RULES, MOVE_RULES):
        for value, words in table:
            assert f"| {value} | {', '.join(words)} |" in doc, value
    for move, (preset, _, _) in MOVES.items():
        assert f"| {move} | {preset} |" in doc
