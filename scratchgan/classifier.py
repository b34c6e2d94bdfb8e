"""The small MNIST classifier that ``scratchgan evaluate`` judges generators with.

Built from scratchgan's own layers (no framework), trained by
``examples/train_mnist_classifier.py``, its weights shipped in
``scratchgan/data/mnist_classifier.npz``::

    image (28, 28, 1) in [0, 1] -> Flatten -> Dense(128) -> LeakyReLU(0.2)
        -> Dense(64) -> LeakyReLU(0.2)  [the 64 features the Frechet distance compares]
        -> Dense(10)  [logits; softmax gives class probabilities]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .backend import to_device
from .errors import CheckpointError, one_line
from .layers import Dense, Flatten, LeakyReLU
from .losses import SoftmaxCrossentropy, softmax
from .models import Sequential
from .optimizers import Adam
from .safe_io import read_npz
from .xp import to_host

WEIGHTS = Path(__file__).parent / "data" / "mnist_classifier.npz"
#: the layers up to here (inclusive) give the features
FEATURE_LAYERS = 5


def build_classifier(seed=None, image_shape=(28, 28, 1), classes: int = 10) -> Sequential:
    return Sequential([Flatten(), Dense(128), LeakyReLU(0.2), Dense(64), LeakyReLU(0.2), Dense(classes)],
                      input_shape=image_shape, name="classifier", seed=seed)


def features_and_probabilities(model: Sequential, images, batch: int = 1000, tick=None):
    """(features (N, 64) float64, class probabilities (N, 10)) of images in [0, 1];
    ``tick(k)`` is told of every k images done."""
    feats, probs = [], []
    for i in range(0, len(images), batch):
        x = to_device(images[i:i + batch], dtype=np.float32)  # the GPU on the cupy backend
        for k, layer in enumerate(model.layers):
            x = layer.forward(x, training=False)
            if k + 1 == FEATURE_LAYERS:
                feats.append(to_host(x).astype(np.float64))
        probs.append(softmax(to_host(x).astype(np.float64)))
        if tick:
            tick(len(probs[-1]))
    return np.concatenate(feats), np.concatenate(probs)


def accuracy(model: Sequential, images, labels) -> float:
    return float(np.mean(features_and_probabilities(model, images)[1].argmax(axis=1) == labels))


def train_classifier(images, labels, epochs: int = 15, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                     log=print) -> Sequential:
    """Minibatch Adam on softmax cross-entropy; images (N, 28, 28, 1) in [0, 1], labels (N,)."""
    rng = np.random.default_rng(seed)
    model = build_classifier(seed=seed, image_shape=images.shape[1:])
    loss_fn, optimizer = SoftmaxCrossentropy(), Adam(lr=lr)
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        losses = []
        for i in range(0, len(images), batch_size):
            idx = order[i:i + batch_size]
            model.zero_grad()
            losses.append(loss_fn.forward(model.forward(images[idx]), labels[idx]))
            model.backward(loss_fn.backward(), need_input_grad=False)  # images: no dx
            optimizer.step(model.params, model.grads)
        log(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}")
    return model


def load_classifier(path=None):
    """(model, facts): the shipped classifier, or one saved by examples/train_mnist_classifier.py;
    facts holds what the training script recorded (held-out accuracy, data, ...)."""
    arrays = read_npz(path or WEIGHTS, "classifier", typed=True)
    meta = {k: arrays.pop(k) for k in list(arrays) if k.startswith("meta/")}
    bad = next((k for k, v in meta.items() if v.shape != ()), None)
    if bad is not None:
        raise CheckpointError(f"{one_line(path)}: field {one_line(bad)!r} should be one value, got shape {meta[bad].shape}")
    facts = {k[len("meta/"):]: v.item() for k, v in meta.items()}
    model = build_classifier()
    model.build((None, 28, 28, 1))
    model.set_weights(arrays, source=str(path or WEIGHTS))
    return model, facts
