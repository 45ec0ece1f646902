"""Storyboard scripts in Chinese, English and both: terms, bracket forms, durations, conflicts."""

import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.storyboard import MOVES, parse_script
from nodeloom.ops.storyboard_terms import ANGLE_TERMS, MOVE_TERMS, SIZE_TERMS, has_cjk, read_token

CHINESE = """主角持剑站立(全景镜头,2秒)
剑光特效(特写,1秒)
反派从阴影中现身(低角度镜头,3秒)
镜头环绕两人对峙
缓慢推近主角的眼睛"""

ENGLISH = """The hero stands holding a sword (full shot, 2s)
Sword light effect (close-up, 1s)
The villain emerges from the shadows (low angle shot, 3s)
The camera circles the two of them in a standoff
Slowly push in on the hero's eyes"""


def _fields(board):
    return [(s.size, s.angle, s.movement, s.duration) for s in board.shots]


def test_the_chinese_script_gives_the_same_shots_as_the_english_one():
    expected = [("FS", "eye level", "static", 2.0), ("CU", "eye level", "static", 1.0),
                ("MS", "low angle", "static", 3.0), ("2S", "eye level", "orbit", 2.0),
                ("ECU", "eye level", "push in", 2.0)]
    chinese, english = parse_script(CHINESE), parse_script(ENGLISH)
    assert _fields(chinese) == expected and _fields(english) == expected
    assert [s.text for s in chinese.shots][:3] == ["主角持剑站立", "剑光特效", "反派从阴影中现身"]
    assert chinese.shots[3].rules["movement"] == "term `环绕`" and chinese.shots[4].rules["movement"] == "term `推近`"
    assert chinese.shots[4].rules["size"] == "keyword `眼睛`"
    assert [s.frames(24) for s in chinese.shots] == [48, 24, 72, 48, 48]


@pytest.mark.parametrize(("table", "field"), [(SIZE_TERMS, "size"), (ANGLE_TERMS, "angle"), (MOVE_TERMS, "movement")])
def test_every_term_sets_its_field_in_brackets(table, field):
    for term, value in table.items():
        shot = parse_script(f"[{term}] 主角站着").shots[0]
        assert getattr(shot, field) == value and shot.rules[field] == "override", term
        if has_cjk(term) and len(term) > 1:  # unambiguous Chinese terms also work in running text
            shot = parse_script(f"主角站着，{term}").shots[0]
            assert getattr(shot, field) == value and shot.rules[field] == f"term `{term}`", term


@pytest.mark.parametrize("term", ["远景", "全景", "中景", "近景", "特写", "大特写", "推", "拉", "摇", "移", "跟", "升降",
                                  "环绕", "甩", "俯拍", "仰拍", "低角度", "鸟瞰"])
def test_the_issue_vocabulary_is_covered(term):
    assert read_token(term, 24, list(MOVES)) is not None and read_token(term + "镜头", 24, list(MOVES)) is not None


def test_chinese_terms_map_to_film_conventions():
    sizes = {t: SIZE_TERMS[t] for t in ("大远景", "远景", "全景", "中景", "近景", "特写", "大特写")}
    assert sizes == {"大远景": "EWS", "远景": "WS", "全景": "FS", "中景": "MS", "近景": "MCU", "特写": "CU", "大特写": "ECU"}
    moves = {t: MOVE_TERMS[t] for t in ("推", "拉", "摇", "移", "跟", "升降", "环绕", "甩", "左摇", "上摇", "降")}
    assert moves == {"推": "push in", "拉": "pull out", "摇": "pan right", "移": "track right", "跟": "track right",
                     "升降": "crane up", "环绕": "orbit", "甩": "whip pan", "左摇": "pan left", "上摇": "tilt up",
                     "降": "crane down"}
    assert {ANGLE_TERMS[t] for t in ("俯拍", "俯视")} == {"high angle"} and ANGLE_TERMS["鸟瞰"] == "overhead"
    assert {ANGLE_TERMS[t] for t in ("仰拍", "低角度")} == {"low angle"}


@pytest.mark.parametrize("line", ["主角[特写, 推, 2秒]", "主角【特写，推，2秒】", "主角［特写、推、2秒］", "主角(特写,推,2秒)",
                                  "主角（特写，推，2秒）", "主角（特写镜头；推镜头；2秒钟）", "主角 [CU, push in, 2s]",
                                  "主角 (close-up / push in / 48f)", "主角（特写 推 2秒）"])
def test_bracket_forms_full_width_and_ascii(line):
    shot = parse_script(line).shots[0]
    assert (shot.size, shot.movement, shot.duration, shot.text) == ("CU", "push in", 2.0, "主角")


@pytest.mark.parametrize(("token", "seconds"), [("2秒", 2.0), ("1.5s", 1.5), ("1.5秒", 1.5), ("3 seconds", 3.0),
                                                ("2.5 sec", 2.5), ("36帧", 1.5), ("36f", 1.5)])
def test_durations(token, seconds):
    assert parse_script(f"门开了 [{token}]").shots[0].duration == seconds
    assert parse_script(f"The door opens ({token})").shots[0].duration == seconds


def test_free_text_durations_and_round_brackets_that_are_not_directions():
    shot = parse_script("雨中的街道，3秒").shots[0]
    assert shot.duration == 3.0 and shot.rules["duration"] == "term `3秒`" and shot.size == "WS"
    shot = parse_script("MARA (V.O.): We should go.").shots[0]
    assert shot.speaker == "Mara" and shot.size == "MCU"  # a parenthetical is not a direction
    shot = parse_script("他笑了（很久以后）").shots[0]
    assert shot.text == "他笑了（很久以后）" and shot.rules["size"] == "default"


def test_mixed_scripts_and_chinese_dialogue():
    board = parse_script("""【大远景，鸟瞰，3秒】 The city at dawn.
The hero walks into the hall（远景、跟拍）
主角：“我们终于到了，这里就是传说中的城市。”
A close-up of her eyes, 镜头甩向窗外 1.5秒""")
    assert _fields(board) == [("EWS", "overhead", "static", 3.0), ("WS", "eye level", "track right", 2.0),
                              ("MCU", "eye level", "static", 4.0), ("CU", "eye level", "whip pan", 1.5)]
    talk = board.shots[2]
    # 17 Chinese characters at 4 per second → 4.25 s, rounded up to the half second; the spoken
    # word 城市 (city) does not make the shot a wide one
    assert talk.speaker == "主角" and talk.dialogue.startswith("我们终于到了") and talk.rules["size"] == "dialogue"
    assert board.shots[3].rules["size"] == "term `close-up` (won over `eyes` → ECU)"


def test_conflicting_terms_say_which_won():
    shot = parse_script("[CU, 3s] 特写 全景 主角的眼睛").shots[0]
    assert shot.size == "CU" and shot.rules["size"] == "override (won over `全景` → FS, `眼睛` → ECU)"
    shot = parse_script("全景 然后 特写").shots[0]
    assert shot.size == "FS" and shot.rules["size"] == "term `全景` (won over `特写` → CU)"
    shot = parse_script("【推，拉，2秒，3秒】 门").shots[0]
    assert shot.movement == "push in" and shot.rules["movement"] == "override (won over `拉` → pull out)"
    assert shot.duration == 2.0 and shot.rules["duration"] == "override (won over `3秒` → 3s)"
    assert parse_script("A face in the crowd").shots[0].rules["size"] == "keyword `face` (won over `crowd` → WS)"


def test_unknown_items_in_square_brackets_are_named():
    with pytest.raises(ValidationError, match="line 2: override `侧面` is not a shot size"):
        parse_script("主角站着\n【特写，侧面】 主角")


def test_every_chinese_term_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "packs" / "video.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if line.startswith(("| size |", "| angle |", "| move |"))]
    for table in (SIZE_TERMS, ANGLE_TERMS, MOVE_TERMS):
        for term, value in table.items():
            if has_cjk(term):
                assert any(f"| {value} |" in r and term in r.split("|")[3].split() for r in rows), term


def test_chinese_captions_use_a_chinese_font_when_one_is_installed():
    import os

    import numpy as np

    from nodeloom.ops.video_plots import CJK_FONTS, render_contact_sheet

    if not any(os.path.isfile(p) for p in CJK_FONTS):
        pytest.skip("no font with Chinese glyphs installed")
    from PIL import ImageFont

    from nodeloom.ops import video_plots

    board = parse_script("镜头环绕两人对峙\n缓慢推近主角的眼睛")
    sheet = render_contact_sheet(board, columns=2, panel_width=200)
    assert isinstance(video_plots._font(12, cjk=True), ImageFont.FreeTypeFont)
    # with the fallback font every Chinese character is the same box; with a Chinese font
    # two different captions leave different ink
    caption = lambda i: sheet[int(200 / 1.5) + 20 :, 12 + i * 212 : 12 + i * 212 + 200]  # noqa: E731
    assert not np.array_equal(caption(0) < 0.5, caption(1) < 0.5)
