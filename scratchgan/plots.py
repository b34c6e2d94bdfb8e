"""Training curves as a PNG and the sample grids as an animated GIF, drawn with Pillow.

``plot_curves(history, path)`` draws two panels over the iterations: the D and G losses
(each iteration faint, a moving average bold) and D's accuracy. ``grids_to_gif`` turns
the fixed-z sample grids of a run into one animation, each frame captioned with its
iteration, the last held longer.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import make_grid
from .safe_io import atomic_write


def label_font():
    """Pillow's built-in font at 13 px. At its bitmap default size a space is about one pixel
    wide ("D accuracy" read as "Daccuracy"); Pillow before 10.1 has only that size."""
    try:
        return ImageFont.load_default(size=13)
    except TypeError:
        return ImageFont.load_default()


D_COLOUR, G_COLOUR, ACC_COLOUR = (31, 119, 180), (214, 39, 40), (44, 160, 44)


def moving_average(values, window: int):
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def nice_ticks(lo: float, hi: float, count: int = 5):
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10) if m * power >= raw), default=10 * power)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


class Panel:
    """A rectangle of the canvas with data coordinates, axes, ticks and a title."""

    def __init__(self, draw, box, x_range, y_range, title):
        self.draw, self.box = draw, box
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        font = label_font()
        left, top, right, bottom = box
        draw.rectangle(box, outline=(0, 0, 0))
        draw.text((left, top - 17), title, fill=(0, 0, 0), font=font)
        for y in nice_ticks(self.y0, self.y1):
            py = self.py(y)
            draw.line([(left, py), (right, py)], fill=(225, 225, 225))
            draw.text((left - 6, py), f"{y:g}", fill=(0, 0, 0), font=font, anchor="rm")
        for x in nice_ticks(self.x0, self.x1):
            px = self.px(x)
            draw.line([(px, bottom), (px, bottom + 4)], fill=(0, 0, 0))
            draw.text((px, bottom + 6), f"{x:g}", fill=(0, 0, 0), font=font, anchor="mt")

    def px(self, x):
        left, _, right, _ = self.box
        return left + (x - self.x0) / max(self.x1 - self.x0, 1e-12) * (right - left)

    def py(self, y):
        _, top, _, bottom = self.box
        return bottom - (y - self.y0) / max(self.y1 - self.y0, 1e-12) * (bottom - top)

    def line(self, xs, ys, colour, width=1):
        ys = np.clip(ys, self.y0, self.y1)
        points = [(self.px(x), self.py(y)) for x, y in zip(xs, ys)]
        if len(points) > 1:
            self.draw.line(points, fill=colour, width=width)

    def legend(self, entries):
        left, top = self.box[0] + 8, self.box[1] + 6
        for k, (label, colour) in enumerate(entries):
            y = top + 14 * k
            self.draw.line([(left, y + 5), (left + 18, y + 5)], fill=colour, width=3)
            self.draw.text((left + 24, y), label, fill=(0, 0, 0), font=label_font())


def _thin(xs, *columns, limit=2000):
    """At most ``limit`` evenly spaced points (a 20,000-iteration run stays quick to draw)."""
    step = max(1, len(xs) // limit)
    return (xs[::step], *(c[::step] for c in columns))


def plot_curves(history, path, size=(900, 600)) -> None:
    """history: rows (iteration, d_loss, d_accuracy, g_loss, ...) -> a two-panel PNG."""
    h = np.asarray(history, dtype=np.float64)
    if h.ndim != 2 or len(h) < 2:
        raise ValueError(f"need at least two history rows to draw curves, got {len(h)}")
    it, d_loss, acc, g_loss = h[:, 0], h[:, 1], h[:, 2], h[:, 3]
    window = max(1, len(it) // 50)
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    width, height = size
    x_range = (it[0], it[-1])
    losses = np.concatenate([d_loss, g_loss])
    top = float(np.percentile(losses, 99)) * 1.1  # a few early spikes must not flatten the rest
    loss_panel = Panel(draw, (60, 30, width - 20, int(height * 0.62)), x_range, (0.0, max(top, 1e-3)),
                       f"losses (faint: every iteration, bold: mean of {window})")
    acc_panel = Panel(draw, (60, int(height * 0.62) + 40, width - 20, height - 30), x_range, (0.0, 1.0),
                      "D accuracy")
    for values, colour in ((d_loss, D_COLOUR), (g_loss, G_COLOUR)):
        faint = tuple(int(c + 0.7 * (255 - c)) for c in colour)
        loss_panel.line(*_thin(it, values), faint)
        loss_panel.line(*_thin(it, moving_average(values, window)), colour, width=2)
    acc_panel.line(*_thin(it, moving_average(acc, window)), ACC_COLOUR, width=2)
    loss_panel.legend([("D loss", D_COLOUR), ("G loss", G_COLOUR)])
    draw.text((width // 2, height - 14), "iteration", fill=(0, 0, 0), font=label_font(), anchor="mt")
    with atomic_write(path) as f:
        image.save(f, format="PNG")


#: the most frames progress.gif holds: a long run's grids are thinned to this many, evenly
#: spaced, first and last kept, so the memory it takes to build does not grow with the run
MAX_FRAMES = 120


def evenly_spaced(items, limit: int):
    """At most ``limit`` of ``items``, evenly spaced, the first and the last always among them."""
    items = list(items)
    if len(items) <= limit:
        return items
    picks = sorted({round(k * (len(items) - 1) / (limit - 1)) for k in range(limit)})
    return [items[i] for i in picks]


def grids_to_gif(frames, path, frame_ms: int = 250, hold_last_ms: int = 2000, max_frames: int = MAX_FRAMES) -> None:
    """frames: (caption, uint8 images (16, H, W, C)) pairs in order -> one looping GIF of
    their 4-column grids, captioned, of at most ``max_frames`` frames (evenly spaced), each
    kept as a paletted image while it is built. The grids are drawn from arrays, never
    decoded from the PNG files a run wrote."""
    if not frames:
        raise ValueError("no sample grids to animate")
    pictures = []
    for caption, images in evenly_spaced(frames, max_frames):
        grid = Image.fromarray(make_grid(np.asarray(images, dtype=np.float32) / 255, columns=4, scale=3)).convert("RGB")
        canvas = Image.new("RGB", (grid.width, grid.height + 16), (255, 255, 255))
        canvas.paste(grid, (0, 16))
        ImageDraw.Draw(canvas).text((4, 2), caption, fill=(0, 0, 0), font=label_font())
        pictures.append(canvas.convert("P", palette=Image.Palette.ADAPTIVE))
    durations = [frame_ms] * (len(pictures) - 1) + [hold_last_ms]
    with atomic_write(path) as f:
        pictures[0].save(f, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=durations, loop=0)
