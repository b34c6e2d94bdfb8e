"""A roofline picture of ``scratchgan bench``'s ops, drawn with Pillow (``--plot roofline.png``).

An op that does F operations while moving B bytes has arithmetic intensity I = F / B
(operations per byte). No op can run faster than

    min(peak, bandwidth * I)

the two roofs: the measured GEMM peak (a flat line) and the measured copy bandwidth
(a diagonal of slope 1 on log-log axes). Each op is a dot at (I, F / t): its distance
below the roof is the speed it leaves on the table. GEMM-bound ops (dense and
convolution) count their multiply-adds; memory-bound ops count a nominal few
operations per element (see ``bench.ELEMENT_OPS``), which puts them far left, under
the bandwidth roof, where only their bytes matter.

A Winograd convolution is drawn as a square, at its *effective* rate: the direct
convolution's FLOPs over its time. It does fewer multiplications than it is credited
with, so it can sit above the GEMM roof; the legend says so.
"""
from __future__ import annotations

import math

from PIL import Image, ImageDraw

from .plots import label_font
from .safe_io import atomic_write

#: one colour per model, in the order the bench runs them
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75)]


def plot_roofline(points, peak_gflops, bandwidth_gbs, path, title="", size=(1000, 700)) -> None:
    """points: [(model, op name, intensity in op/byte, achieved GFLOP/s[, effective])]; the
    roofs: peak (GFLOP/s) and bandwidth (GB/s). ``effective`` (default False) marks an
    effective rate (a Winograd convolution), drawn as a square. Writes a PNG to ``path``
    (atomically)."""
    points = [p for p in points if p[2] > 0 and p[3] > 0]
    if not points:
        raise ValueError("no op with a positive intensity and rate to draw")
    ridge = peak_gflops / bandwidth_gbs  # where the two roofs meet
    x_lo = 10 ** math.floor(math.log10(min(min(p[2] for p in points), ridge) / 2))
    x_hi = 10 ** math.ceil(math.log10(max(max(p[2] for p in points), ridge) * 2))
    y_lo = 10 ** math.floor(math.log10(min(p[3] for p in points) / 2))
    y_hi = 10 ** math.ceil(math.log10(max(peak_gflops, max(p[3] for p in points)) * 1.5))
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = label_font()
    width, height = size
    left, top, right, bottom = 80, 40, width - 230, height - 60

    def px(x):
        return left + (math.log10(x) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo)) * (right - left)

    def py(y):
        y = min(max(y, y_lo), y_hi)
        return bottom - (math.log10(y) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)) * (bottom - top)

    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    draw.text((left, top - 22), title or "roofline", fill=(0, 0, 0), font=font)
    for e in range(round(math.log10(x_lo)), round(math.log10(x_hi)) + 1):
        x = px(10.0**e)
        draw.line([(x, top), (x, bottom)], fill=(230, 230, 230))
        draw.text((x, bottom + 6), f"{10.0**e:g}", fill=(0, 0, 0), font=font, anchor="mt")
    for e in range(round(math.log10(y_lo)), round(math.log10(y_hi)) + 1):
        y = py(10.0**e)
        draw.line([(left, y), (right, y)], fill=(230, 230, 230))
        draw.text((left - 6, y), f"{10.0**e:g}", fill=(0, 0, 0), font=font, anchor="rm")
    draw.text(((left + right) // 2, bottom + 26), "arithmetic intensity (operations per byte moved)",
              fill=(0, 0, 0), font=font, anchor="mt")
    draw.text((8, top - 22), "GFLOP/s", fill=(0, 0, 0), font=font)

    models = list(dict.fromkeys(p[0] for p in points))
    for model, colour in zip(models, COLOURS * (1 + len(models) // len(COLOURS))):
        for point in (p for p in points if p[0] == model):
            x, y = px(point[2]), py(point[3])
            shape = draw.rectangle if len(point) > 4 and point[4] else draw.ellipse
            shape((x - 4, y - 4, x + 4, y + 4), outline=colour, width=2)
    _draw_roofs(draw, px, py, (x_lo, ridge, x_hi), peak_gflops, bandwidth_gbs, font)
    _draw_legend(draw, models, right, top, font, any(len(p) > 4 and p[4] for p in points))
    with atomic_write(path) as f:
        image.save(f, format="PNG")


def _draw_roofs(draw, px, py, xs, peak_gflops, bandwidth_gbs, font) -> None:
    """The bandwidth roof rising to the ridge, the flat GEMM roof after it, both labelled."""
    x_lo, ridge, x_hi = xs
    roof = (0, 0, 0)
    draw.line([(px(x_lo), py(bandwidth_gbs * x_lo)), (px(ridge), py(peak_gflops))], fill=roof, width=2)
    draw.line([(px(ridge), py(peak_gflops)), (px(x_hi), py(peak_gflops))], fill=roof, width=2)
    draw.text((px(x_hi) - 4, py(peak_gflops) - 4), f"GEMM peak {peak_gflops:.0f} GFLOP/s", fill=roof, font=font,
              anchor="rb")
    label_x = x_lo * 1.5  # under the rising roof, reading to the right, on white over the dots
    label_at = (px(label_x), py(bandwidth_gbs * label_x) + 12)
    label = f"copy bandwidth {bandwidth_gbs:.1f} GB/s"
    draw.rectangle(draw.textbbox(label_at, label, font=font, anchor="lt"), fill=(255, 255, 255))
    draw.text(label_at, label, fill=roof, font=font, anchor="lt")


def _draw_legend(draw, models, right, top, font, effective=False) -> None:
    """One coloured dot per model, and what a dot (and a square) means, right of the plot."""
    for k, (model, colour) in enumerate(zip(models, COLOURS * (1 + len(models) // len(COLOURS)))):
        y = top + 8 + 18 * k
        draw.ellipse((right + 16, y, right + 26, y + 10), outline=colour, width=2)
        draw.text((right + 34, y - 1), model, fill=(0, 0, 0), font=font)
    note = ["dots: one op (name and shapes) of", "one training iteration; distance", "below the roof = speed left"]
    if effective:
        note += ["", "squares: Winograd convolutions,", "at the direct convolution's FLOPs", "over their time (effective):",
                 "fewer multiplications, so they", "can pass the GEMM peak"]
    for k, line in enumerate(note):
        draw.text((right + 16, top + 30 + 18 * len(models) + 16 * k), line, fill=(90, 90, 90), font=font)
