"""The Colour QC node: a product-photo colour check against a reference."""

from __future__ import annotations

import json

from nodeloom.node_api import IO, Combo, Float, Image, Int, Node, NodeOutput, Output, Schema
from nodeloom.ops.color import METHODS
from nodeloom.ops.color_qc import color_qc, render_heatmap


class ColorQC(Node):
    """Compare a candidate image's colours with a reference on a grid and say PASS or FAIL.

    Every `grid_step` pixels the colour difference (CIEDE2000 by default) is sampled; a sample
    fails above `threshold`, and an image fails when more than `max_failing_percent` of its
    samples fail. Outputs the verdict, a heatmap with a legend, a JSON report and the main
    statistics. Images of different sizes are an error unless `on_size_mismatch` resizes.
    """

    SCHEMA = Schema(
        "ColorQC", display_name="Colour QC", category="image/color", output_node=True,
        inputs=[
            Image("reference", tooltip="The approved image (one, or one per candidate)."),
            Image("candidate", tooltip="The image(s) to check."),
            Int("grid_step", 10, min=1, max=4096, tooltip="Pixels between samples."),
            Float("threshold", 5.0, min=0.0, max=200.0, step=0.1,
                  tooltip="Largest passing difference (ΔE for CIE methods; 0..1.7 for RGB/HSV)."),
            Combo("method", list(METHODS), default="ciede2000", tooltip="Colour difference formula."),
            Float("max_failing_percent", 30.0, min=0.0, max=100.0, step=0.5,
                  tooltip="An image fails when more than this share of samples fails."),
            Combo("on_size_mismatch", ["error", "resize candidate"], default="error",
                  tooltip="What to do when the images differ in size."),
        ],
        outputs=[
            Output(IO.BOOLEAN, "passed", tooltip="True when every candidate passes."),
            Output(IO.STRING, "status", tooltip="'PASS' or 'FAIL'."),
            Output(IO.IMAGE, "heatmap", tooltip="Difference map with a legend strip."),
            Output(IO.STRING, "report", tooltip="JSON report with per-image statistics."),
            Output(IO.FLOAT, "mean_delta_e", tooltip="Mean sampled difference (first image)."),
            Output(IO.FLOAT, "p95_delta_e", tooltip="95th percentile of sampled differences (first image)."),
            Output(IO.FLOAT, "failing_percent", tooltip="Failing samples in percent (first image)."),
        ],
    )  # fmt: skip

    @classmethod
    def execute(cls, reference, candidate, grid_step, threshold, method, max_failing_percent, on_size_mismatch):
        result = color_qc(
            reference,
            candidate,
            grid_step=grid_step,
            threshold=threshold,
            method=method,
            max_failing_share=max_failing_percent / 100.0,
            resize=on_size_mismatch == "resize candidate",
        )
        report = result.report()
        status = report["status"]
        label = "dE00" if method == "ciede2000" else method
        heatmap = render_heatmap(result.delta_e, threshold, background=reference.expand(result.delta_e.shape[0], -1, -1, -1), label=label)
        first = result.images[0]
        summary = (
            f"{status}: mean {first.mean:.2f}, p95 {first.p95:.2f}, "
            f"{first.failing_share * 100:.1f}% of {first.samples} samples above {threshold:g}"
        )
        return NodeOutput(
            result.passed,
            status,
            heatmap,
            json.dumps(report, indent=2),
            first.mean,
            first.p95,
            first.failing_share * 100.0,
            ui={"text": [summary]},
        )
