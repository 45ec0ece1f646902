"""The KV-cache report and the `nodeloom bench kv` command (small sizes; timings not asserted)."""

from __future__ import annotations

import argparse

import pytest
from PIL import Image

from nodeloom.errors import ValidationError
from nodeloom.text.kv_bench import format_report, kv_report, latency_slope, register_cli, run_kv_benchmark


def test_latency_slope_fits_a_line():
    assert latency_slope([1.0, 1.5, 2.0, 2.5]) == pytest.approx(500.0)
    assert latency_slope([2.0, 2.0, 2.0]) == pytest.approx(0.0)
    assert latency_slope([3.0]) == 0.0


def test_report_compares_modes_and_checks_memory(tiny_llms):
    report = kv_report(tiny_llms["mistral"].model, prompt_tokens=6, new_tokens=24,
                       modes=("none", "dynamic", "static", "sliding"), window=8)
    runs = {r["mode"]: r for r in report["runs"]}
    assert all(r["memory_ok"] for r in runs.values())
    assert runs["none"]["cache_bytes"] == 0
    assert runs["dynamic"]["tokens"] == runs["none"]["tokens"] == runs["static"]["tokens"]
    assert len(runs["dynamic"]["decode_ms"]) == 23
    assert set(report["speedup"]) == set(runs) and report["speedup"]["none"] == 1.0
    assert "sliding" in format_report(report)


def test_cli_registers_under_bench_and_writes_a_plot(tiny_llms, tmp_path):
    parser = argparse.ArgumentParser()
    top = parser.add_subparsers(dest="command")
    top.add_parser("bench").add_subparsers(dest="bench_command")
    register_cli(top)
    plot = tmp_path / "kv.png"
    args = parser.parse_args(["bench", "kv", "--model", str(tiny_llms["llama"].path), "--device", "cpu",
                              "--prompt-tokens", "4", "--new-tokens", "8", "--modes", "none,dynamic",
                              "--plot", str(plot)])
    assert args.func(args) == 0
    with Image.open(plot) as img:
        assert img.format == "PNG" and img.size == (800, 480)


def test_run_accepts_a_dict_and_validates_modes(tiny_llms):
    report = run_kv_benchmark({"model": str(tiny_llms["gpt2"].path), "device": "cpu", "prompt_tokens": 3,
                               "new_tokens": 5, "modes": "dynamic", "plot": ""})
    assert report["plot"] is None and report["runs"][0]["memory_ok"]
    with pytest.raises(ValidationError, match="`--modes` must name modes"):
        run_kv_benchmark({"modes": "dynamic,paged"})


def test_nodeloom_bench_kv_command(tiny_llms, tmp_path, capsys):
    from nodeloom.cli.main import main

    code = main(["bench", "kv", "--model", str(tiny_llms["llama"].path), "--device", "cpu", "--prompt-tokens", "3",
                 "--new-tokens", "4", "--modes", "dynamic,sliding", "--window", "3", "--plot", str(tmp_path / "p.png")])
    captured = capsys.readouterr()
    assert code == 0 and "sliding" in captured.out and (tmp_path / "p.png").is_file()
    # progress goes to stderr while it measures, one line before and after each mode
    assert "kv: measuring cache mode `dynamic` (1/2)" in captured.err and "kv:   `sliding`:" in captured.err


def test_bench_help_is_for_users(capsys):
    from nodeloom.cli.main import main

    with pytest.raises(SystemExit):
        main(["bench", "kv", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "tokens per second" in text and "import" not in text and "register_cli" not in text
