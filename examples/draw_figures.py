"""Draw the pictures of docs/ from the library's own ops: ``python3 examples/draw_figures.py``.

Every number in a picture is computed here by scratchgan itself (im2col, the transposed
convolution, max pooling, a Dense -> LeakyReLU -> loss circuit), so a picture cannot say
something the code does not do. The pictures are drawn with Pillow, as the training
curves are (scratchgan/plots.py), into docs/images/ (or the folder given):

    im2col.png            the patch matrix, each patch's values coloured into its row
    overlap_counts.png    how many kernel taps a transposed convolution adds into each
                          output pixel, for kernels 3, 4 and 5 at stride 2
    batchnorm_graph.png   batch normalisation's graph and the backward's three paths
    maxpool_routing.png   where max pooling's backward sends each gradient
    circuit.png           Dense -> LeakyReLU -> loss, values and gradients on the wires
    checkerboard.png      the pattern those overlap counts stamp on an untrained dcgan_bn G's images
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import scratchgan
from scratchgan import layers as L
from scratchgan import ops
from scratchgan.losses import BinaryCrossentropy
from scratchgan.ops.conv import im2col
from scratchgan.ops.geometry import transpose_window, window
from scratchgan.plots import label_font

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"
CELL = 34
PALETTE = [(141, 211, 199), (255, 255, 179), (190, 186, 218), (251, 128, 114), (128, 177, 211),
           (253, 180, 98), (179, 222, 105), (252, 205, 229), (217, 217, 217), (188, 128, 189),
           (204, 235, 197), (255, 237, 111), (166, 206, 227), (178, 223, 138), (251, 154, 153), (202, 178, 214)]
INK, FORWARD, BACKWARD = (20, 20, 20), (30, 110, 40), (200, 40, 40)
PATHS = [(200, 40, 40), (31, 119, 180), (230, 140, 0)]


# --- the numbers each picture shows --------------------------------------------------------
def im2col_sources(h=3, w=3, k=2):
    """(cols, win): for an h x w one-channel input whose value at (r, c) is its index r*w + c,
    the im2col matrix (one row per output pixel, one column per kernel tap): each entry is
    the index of the input value copied there ("valid", stride 1)."""
    win = window((h, w), (k, k), (1, 1), "valid")
    x = np.arange(h * w, dtype=np.float64).reshape(1, h, w, 1)
    cols = im2col(x, win)  # (1, Ho, Wo, k, k, 1)
    return cols.reshape(win.ho * win.wo, k * k).astype(int), win


def overlap_counts(kernel, stride=2, size=5):
    """How many (input pixel, kernel tap) pairs a transposed convolution adds into each output
    pixel: the transposed convolution of ones with a kernel of ones, "same" padding."""
    win = transpose_window((size, size), (kernel, kernel), (stride, stride), "same")
    ones = np.ones((1, size, size, 1))
    counts = ops.conv2d_backward_data(ones, np.ones((kernel, kernel, 1, 1)), win)
    return counts[0, :, :, 0].round().astype(int)


def untrained_generator_pattern(samples=128):
    """Mean |G(z)| over ``samples`` latents of an untrained dcgan_bn generator, (28, 28): its
    two 5x5 stride-2 transposed convolutions stamp their uneven overlap counts into every
    image before any training, a pattern of period 4 (2 x 2)."""
    from scratchgan import zoo

    g, _, _ = zoo.build("dcgan_bn", seed=0)
    z = np.random.default_rng(0).standard_normal((samples, 100)).astype(np.float32)
    return np.abs(g.forward(z, training=True)[..., 0]).mean(axis=0)


def maxpool_example():
    """(x, winners, dy, dx) of a 4x4 input pooled 2x2 with stride 2."""
    x = np.array([[1, 3, 2, 0], [4, 2, 1, 5], [0, 6, 3, 1], [2, 1, 4, 2]], dtype=np.float64)
    win = window((4, 4), (2, 2), (2, 2), "valid")
    y, argmax = ops.maxpool_forward(x[None, :, :, None], win)
    dy = np.array([[0.1, -0.3], [0.5, 0.2]])
    dx = ops.maxpool_backward(dy[None, :, :, None], argmax, win)[0, :, :, 0]
    return x, y[0, :, :, 0], dy, dx


def circuit_example():
    """Values and gradients of loss = BCE_from_logits(LeakyReLU(x W + b), 1) for one input."""
    dense, act = L.Dense(1, dtype=np.float64), L.LeakyReLU(0.2, dtype=np.float64)
    x = np.array([[1.0, 2.0]])
    dense.build((None, 2))
    dense.params["kernel"][:] = [[0.5], [-0.75]]
    dense.params["bias"][:] = [0.25]
    bce = BinaryCrossentropy(from_logits=True)
    z = dense.forward(x)
    a = act.forward(z)
    loss = float(bce.forward(a, np.ones_like(a)))
    da = bce.backward()
    dz = act.backward(da)
    dx = dense.backward(dz)
    return {"x": x[0], "W": dense.params["kernel"][:, 0], "b": dense.params["bias"][0], "z": z[0, 0], "a": a[0, 0],
            "loss": loss, "da": da[0, 0], "dz": dz[0, 0], "dx": dx[0], "dW": dense.grads["kernel"][:, 0],
            "db": dense.grads["bias"][0]}


# --- drawing ------------------------------------------------------------------------------
def _grid(draw, left, top, values, fills=None, cell=CELL, text=None, outline=INK):
    """A table of cells at (left, top); ``text(value)`` writes each, ``fills`` colours them."""
    font = label_font()
    rows, cols = np.shape(values)[:2]
    for r in range(rows):
        for c in range(cols):
            box = (left + c * cell, top + r * cell, left + (c + 1) * cell, top + (r + 1) * cell)
            draw.rectangle(box, fill=None if fills is None else fills[r][c], outline=outline)
            label = str(values[r][c]) if text is None else text(values[r][c])
            draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), label, fill=INK, font=font, anchor="mm")
    return left + cols * cell, top + rows * cell


def _arrow(draw, start, end, colour=INK, width=2):
    draw.line([start, end], fill=colour, width=width)
    v = np.subtract(end, start, dtype=float)
    v /= max(np.hypot(*v), 1e-9)
    n = np.array([-v[1], v[0]])
    tip = np.array(end, dtype=float)
    draw.polygon([tuple(tip), tuple(tip - 9 * v + 4 * n), tuple(tip - 9 * v - 4 * n)], fill=colour)


def _canvas(width, height):
    image = Image.new("RGB", (width, height), "white")
    return image, ImageDraw.Draw(image)


def draw_im2col(path):
    cols, win = im2col_sources()
    names = "abcdefghi"
    image, draw = _canvas(520, 230)
    font = label_font()
    draw.text((20, 12), "x (3x3, one channel)", fill=INK, font=font)
    x_index = np.arange(9).reshape(3, 3)
    _grid(draw, 20, 40, x_index, [[PALETTE[v] for v in row] for row in x_index], text=lambda v: names[v])
    draw.text((200, 12), "cols = im2col(x): a row per output pixel (2x2 kernel, valid)", fill=INK, font=font)
    right, _ = _grid(draw, 200, 40, cols, [[PALETTE[v] for v in row] for row in cols], text=lambda v: names[v])
    for r in range(len(cols)):
        p, q = divmod(r, win.wo)
        draw.text((right + 10, 40 + r * CELL + CELL / 2), f"output pixel ({p}, {q})", fill=INK, font=font, anchor="lm")
    draw.text((200, 40 + 4 * CELL + 12), "columns: kernel taps (0,0) (0,1) (1,0) (1,1)", fill=INK, font=font)
    draw.text((20, 40 + 3 * CELL + 12), "e is copied into 4 rows", fill=INK, font=font)
    image.save(path)


def draw_overlap_counts(path):
    image, draw = _canvas(3 * 210 + 20, 260)
    font = label_font()
    for k, left in zip((3, 4, 5), (20, 230, 440)):
        counts = overlap_counts(k)
        shades = [[tuple(int(255 - 22 * v) for _ in range(3)) for v in row] for row in counts]
        draw.text((left, 12), f"kernel {k}, stride 2: taps per pixel", fill=INK, font=font)
        _grid(draw, left, 40, counts, shades, cell=18)
        values = sorted(set(counts[2:-2, 2:-2].ravel().tolist()))
        draw.text((left, 40 + 10 * 18 + 10), f"interior: {'/'.join(map(str, values))}", fill=INK, font=font)
    image.save(path)


def draw_batchnorm_graph(path):
    image, draw = _canvas(760, 340)
    font = label_font()
    nodes = {"x": (80, 170), "mean": (250, 70), "x - mean": (250, 170), "var": (420, 70), "s": (572, 70),
             "xhat": (572, 170), "y": (710, 170)}
    for name, (cx, cy) in nodes.items():
        draw.rounded_rectangle((cx - 40, cy - 17, cx + 40, cy + 17), radius=8, outline=INK, width=2, fill=(245, 245, 245))
        draw.text((cx, cy), name, fill=INK, font=font, anchor="mm")
    for a, b in [("x", "mean"), ("x", "x - mean"), ("mean", "x - mean"), ("x - mean", "var"), ("var", "s"),
                 ("x - mean", "xhat"), ("s", "xhat"), ("xhat", "y")]:
        (ax, ay), (bx, by) = nodes[a], nodes[b]
        if ay == by:
            _arrow(draw, (ax + 40, ay), (bx - 40, by))
        elif ax == bx:
            _arrow(draw, (ax, ay + 17 * np.sign(by - ay)), (bx, by - 17 * np.sign(by - ay)))
        else:
            _arrow(draw, (ax + 25, ay - 17 * np.sign(ay - by)), (bx - 25, by + 17 * np.sign(ay - by)))
    draw.text((20, 12), "forward: black, left to right; the backward's three paths from y to x, in colour",
              fill=INK, font=font)
    routes = [[(700, 198), (122, 198)],
              [(700, 208), (262, 208), (262, 88), (222, 88), (110, 152)],
              [(700, 218), (584, 218), (584, 40), (432, 40), (432, 88), (290, 152), (290, 218), (122, 218)]]
    for route, colour in zip(routes, PATHS):
        draw.line(route[:-1], fill=colour, width=3, joint="curve")
        _arrow(draw, route[-2], route[-1], colour, width=3)
    draw.text((20, 245), "dxhat = gamma * dy reaches x along three paths; dx is their sum, times s:", fill=INK, font=font)
    labels = ["1. directly, through x - mean and xhat:    dxhat",
              "2. through the mean (every x moves it):    - mean(dxhat)",
              "3. through the variance and s:             - xhat * mean(dxhat * xhat)"]
    for i, (label, colour) in enumerate(zip(labels, PATHS)):
        draw.line([(30, 275 + 22 * i), (60, 275 + 22 * i)], fill=colour, width=4)
        draw.text((70, 275 + 22 * i), label, fill=INK, font=font, anchor="lm")
    image.save(path)


def draw_checkerboard(path):
    pattern = untrained_generator_pattern()
    scaled = np.round(255 * (pattern - pattern.min()) / (pattern.max() - pattern.min())).astype(np.uint8)
    big = Image.fromarray(scaled).resize((28 * 8, 28 * 8), Image.NEAREST).convert("RGB")
    image, draw = _canvas(28 * 8 + 300, 28 * 8 + 40)
    image.paste(big, (10, 30))
    font = label_font()
    draw.text((10, 8), "mean |G(z)| of an untrained dcgan_bn G, 128 samples", fill=INK, font=font)
    lines = ["bright rows and columns repeat every 4 pixels:",
             "the two 5x5 stride-2 transposed convolutions",
             "(7 -> 14 -> 28) add 4, 6 or 9 kernel taps into",
             "neighbouring pixels, and the 2-pixel period",
             "of the last one doubles to 4 through the first.",
             "Training has to learn to even it out: the",
             "samples of the first iterations are this grid."]
    for i, line in enumerate(lines):
        draw.text((28 * 8 + 24, 40 + 20 * i), line, fill=INK, font=font)
    image.save(path)


def draw_maxpool_routing(path):
    x, y, dy, dx = maxpool_example()
    image, draw = _canvas(620, 230)
    font = label_font()
    winners = dx != 0
    block = [[PALETTE[(r // 2) * 2 + c // 2] for c in range(4)] for r in range(4)]
    draw.text((20, 12), "x: 2x2 windows, winners boxed", fill=INK, font=font)
    _grid(draw, 20, 40, x.astype(int), block)
    for r, c in zip(*np.nonzero(winners)):
        draw.rectangle((20 + c * CELL + 2, 40 + r * CELL + 2, 20 + (c + 1) * CELL - 2, 40 + (r + 1) * CELL - 2),
                       outline=BACKWARD, width=3)
    draw.text((220, 35), "dy (2x2)", fill=INK, font=font)
    _grid(draw, 220, 57, dy, [[PALETTE[r * 2 + c] for c in range(2)] for r in range(2)], text=lambda v: f"{v:g}")
    draw.text((350, 12), "dx: each dy goes to its window's winner", fill=INK, font=font)
    _grid(draw, 350, 40, dx, block, text=lambda v: f"{v:g}" if v else "0")
    _arrow(draw, (170, 108), (212, 108))
    _arrow(draw, (300, 108), (342, 108), BACKWARD)
    draw.text((20, 190), f"y = max of each window = {y.astype(int).tolist()}", fill=INK, font=font)
    image.save(path)


def draw_circuit(path):
    v = circuit_example()
    image, draw = _canvas(820, 250)
    font = label_font()
    boxes = {"x W + b": (230, 110), "LeakyReLU(0.2)": (460, 110), "BCE(a, 1), logits": (690, 110)}
    for name, (cx, cy) in boxes.items():
        draw.rounded_rectangle((cx - 70, cy - 22, cx + 70, cy + 22), radius=8, outline=INK, width=2, fill=(245, 245, 245))
        draw.text((cx, cy), name, fill=INK, font=font, anchor="mm")
    wires = [((20, 110), (160, 110), f"x = {v['x'].tolist()}", f"dx = {np.round(v['dx'], 4).tolist()}"),
             ((300, 110), (390, 110), f"z = {v['z']:.4g}", f"dz = {v['dz']:.4g}"),
             ((530, 110), (620, 110), f"a = {v['a']:.4g}", f"da = {v['da']:.4g}")]
    for start, end, forward, backward in wires:
        _arrow(draw, start, end)
        draw.text((start[0] + 2, start[1] - 24), forward, fill=FORWARD, font=font)
        draw.text((start[0] + 2, start[1] + 10), backward, fill=BACKWARD, font=font)
    draw.text((640, 150), f"loss = {v['loss']:.4g}", fill=FORWARD, font=font)
    draw.text((160, 150), f"W = {v['W'].tolist()}, b = {v['b']:g}", fill=INK, font=font)
    draw.text((160, 170), f"dW = {np.round(v['dW'], 4).tolist()}, db = {v['db']:.4g}", fill=BACKWARD, font=font)
    draw.text((20, 210), "forward values above the wires (green), gradients dL/d(wire) below (red): each box turns "
                         "the gradient of its output into that of its input", fill=INK, font=font)
    image.save(path)


def sample_strip(run_dir, iterations, path, gap=10):
    """The run's fixed-z grids at ``iterations`` side by side, ``gap`` white pixels apart
    (the README's early samples). Each PNG is read through the validated reader."""
    import io

    from scratchgan.safe_io import read_bytes

    grids = []
    for it in iterations:
        raw = read_bytes(Path(run_dir) / "samples" / f"iter_{it:06d}.png", "picture", in_run=True)
        with Image.open(io.BytesIO(raw)) as grid:
            grids.append(grid.convert("RGB"))
    width, height = grids[0].size
    strip = Image.new("RGB", (len(grids) * (width + gap) - gap, height), "white")
    for k, grid in enumerate(grids):
        strip.paste(grid, (k * (width + gap), 0))
    strip.save(path)


FIGURES = {"im2col.png": draw_im2col, "overlap_counts.png": draw_overlap_counts,
           "batchnorm_graph.png": draw_batchnorm_graph, "maxpool_routing.png": draw_maxpool_routing,
           "circuit.png": draw_circuit, "checkerboard.png": draw_checkerboard}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(OUT), help="folder for the PNGs (default: docs/images)")
    parser.add_argument("--strip", nargs="+", metavar=("RUN_DIR", "ITERATION"),
                        help="instead: a run's sample grids at these iterations side by side, into --strip-out")
    parser.add_argument("--strip-out", default="strip.png", help="the strip's PNG (default strip.png)")
    args = parser.parse_args(argv)
    if args.strip:
        sample_strip(args.strip[0], [int(i) for i in args.strip[1:]], args.strip_out)
        print(f"wrote {args.strip_out}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratchgan.set_backend("numpy")  # the reference ops: every machine draws the same numbers
    for name, draw in FIGURES.items():
        draw(out / name)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
