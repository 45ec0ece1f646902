"""Per-segment prompt routing and order-independent seeds."""

from nodeloom.ops.detail.prompts import box_seed, route_prompt, split_prompts


def test_sep_routes_by_index_and_repeats_the_last():
    text = "a smiling face [SEP] an old face"
    assert route_prompt(text, 0) == "a smiling face"
    assert route_prompt(text, 1) == "an old face"
    assert route_prompt(text, 5) == "an old face"


def test_skip_and_prompt_and_empty_parts():
    text = "[SKIP] [SEP] [PROMPT], detailed [SEP]"
    assert route_prompt(text, 0, "portrait") is None
    assert route_prompt(text, 1, "portrait") == "portrait, detailed"
    assert route_prompt(text, 2, "portrait") == "portrait"
    assert route_prompt("", 3, "main") == "main"
    assert split_prompts("a[SEP]b [SEP]  c") == ["a", "b", "c"]


def test_box_seed_is_order_independent_and_stable():
    a, b = (10, 10, 50, 50), (100, 20, 140, 60)
    assert box_seed(7, a) == box_seed(7, a)
    assert box_seed(7, a) != box_seed(7, b)
    assert box_seed(7, a) != box_seed(8, a)
    assert box_seed(7, (11, 11, 51, 51)) == box_seed(7, a)  # a 1 px jitter keeps the seed
    assert 0 <= box_seed(2**64 - 1, a) < 2**63
