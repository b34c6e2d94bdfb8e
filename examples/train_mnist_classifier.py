"""Train the classifier that `scratchgan evaluate` uses, and write its weights.

The shipped scratchgan/data/mnist_classifier.npz came from exactly this command:

    python examples/train_mnist_classifier.py --out scratchgan/data/mnist_classifier.npz

It trains on the first 8,000 of the embedded MNIST images and reports its accuracy on the
other 2,000, which it never saw; that accuracy is stored beside the weights. With
`--data fashion-mnist` it trains a Fashion-MNIST classifier instead (use it with
`scratchgan evaluate --classifier FILE --data fashion-mnist`).
"""
import argparse

import numpy as np

from scratchgan.classifier import accuracy, train_classifier
from scratchgan.datasets import load_dataset
from scratchgan.safe_io import atomic_save_npz
from scratchgan.script import errors_as_one_line, parse_args

parser = argparse.ArgumentParser()
parser.add_argument("--data", default="mnist")
parser.add_argument("--train", type=int, default=8000, help="images to train on; the rest are held out")
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="mnist_classifier.npz")
args = parse_args(parser)  # also --backend numpy | numba | cupy

with errors_as_one_line(parser.prog):
    dataset = load_dataset(args.data, (28, 28, 1))
x = dataset.images.astype(np.float32) / 255.0
y = dataset.labels.astype(np.int64)
model = train_classifier(x[:args.train], y[:args.train], epochs=args.epochs, seed=args.seed)
held_out = accuracy(model, x[args.train:], y[args.train:])
print(f"accuracy: {accuracy(model, x[:args.train], y[:args.train]):.4f} on the {args.train} training images, "
      f"{held_out:.4f} on the {len(x) - args.train} held out")
meta = {"meta/held_out_accuracy": np.array(held_out), "meta/data": np.array(args.data),
        "meta/train_images": np.array(args.train), "meta/epochs": np.array(args.epochs)}
atomic_save_npz(args.out, {**model.weights(), **meta})
print(f"wrote {args.out}")
