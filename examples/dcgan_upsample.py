"""The Keras DCGAN with upsampling, tanh and max-pooling (docs/tutorials.md), with scratchgan's API.

As in the tutorial's `train`: z ~ U(-1, 1); D is trained on one batch that stacks the
real images on G's images (labels 1 then 0); then G is trained through D with
`discriminator.trainable = False`, here D's backward asked for dL/dx only. Both use SGD
with Nesterov momentum. `--nice` at the end draws like the tutorial's `generate(nice=True)`.

    python examples/dcgan_upsample.py --iterations 500 --out runs/example-dcgan-upsample
"""
import argparse
from pathlib import Path

import numpy as np

from scratchgan import Sequential
from scratchgan.datasets import load_mnist
from scratchgan.images import save_grid
from scratchgan.layers import Activation, BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D, Reshape, UpSampling2D
from scratchgan.losses import BinaryCrossentropy, binary_accuracy
from scratchgan.optimizers import SGD
from scratchgan.script import parse_args
from scratchgan.backend import backend_module
from scratchgan.xp import to_host

parser = argparse.ArgumentParser()
parser.add_argument("--iterations", type=int, default=14040)  # 30 epochs of 60,000 / 128, as the tutorial loops
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--sample-interval", type=int, default=100)
parser.add_argument("--out", default="runs/example-dcgan-upsample")
args = parse_args(parser)  # also --backend numpy | numba | cupy
xp = backend_module()  # numpy, or cupy for --backend cupy: arrays live where the weights do


def generator_model():
    return Sequential([
        Dense(1024), Activation("tanh"),
        Dense(128 * 7 * 7), BatchNormalization(), Activation("tanh"), Reshape((7, 7, 128)),
        UpSampling2D(2), Conv2D(64, 5, padding="same"), Activation("tanh"),   # 14x14x64
        UpSampling2D(2), Conv2D(1, 5, padding="same"), Activation("tanh"),    # 28x28x1
    ], input_shape=(100,), name="generator", seed=0)


def discriminator_model():
    return Sequential([
        Conv2D(64, 5, padding="same"), Activation("tanh"), MaxPooling2D(2),   # 14x14x64
        Conv2D(128, 5), Activation("tanh"), Flatten(),                        # 10x10x128
        Dense(1024), Activation("tanh"), Dense(1), Activation("sigmoid"),
    ], input_shape=(28, 28, 1), name="discriminator", seed=1)


g, d = generator_model(), discriminator_model()
g.summary()
d.summary()
d_optim = SGD(lr=0.001, momentum=0.9, nesterov=True)
g_optim = SGD(lr=0.001, momentum=0.9, nesterov=True)
bce = BinaryCrossentropy()

images, _ = load_mnist()
X_train = xp.asarray(((images.astype(np.float32) - 127.5) / 127.5)[..., None])
rng = np.random.default_rng(0)
fixed_noise = rng.uniform(-1, 1, (16, 100)).astype(np.float32)
batches = len(X_train) // args.batch_size

for step in range(args.iterations):
    index = step % batches  # the batches in file order, epoch after epoch
    image_batch = X_train[index * args.batch_size:(index + 1) * args.batch_size]
    noise = xp.asarray(rng.uniform(-1, 1, (args.batch_size, 100)).astype(np.float32))
    generated_images = g.forward(noise, training=False)  # g.predict
    X = xp.concatenate((image_batch, generated_images))
    y = xp.array([1] * args.batch_size + [0] * args.batch_size, dtype=np.float32)[:, None]
    d.zero_grad()
    p = d.forward(X)
    d_loss, accuracy = bce.forward(p, y), binary_accuracy(p, y)
    d.backward(bce.backward(), need_input_grad=False)  # no dx: the input is images
    d_optim.step(d.params, d.grads)                   # d.train_on_batch(X, y)

    noise = xp.asarray(rng.uniform(-1, 1, (args.batch_size, 100)).astype(np.float32))
    g.zero_grad()
    p = d.forward(g.forward(noise))
    g_loss = bce.forward(p, xp.ones_like(p))
    g.backward(d.backward(bce.backward(), need_param_grads=False), need_input_grad=False)
    g_optim.step(g.params, g.grads)                   # d_on_g.train_on_batch(noise, [1] * BATCH_SIZE)

    if (step + 1) % args.sample_interval == 0 or step + 1 == args.iterations:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (step + 1, d_loss, 100 * accuracy, g_loss))
        save_grid((g.predict(fixed_noise) + 1) / 2, Path(args.out) / f"{step + 1:06d}.png", columns=4)

# generate(nice=True): draw 20x as many, keep the ones D rates most real
noise = rng.uniform(-1, 1, (16 * 20, 100)).astype(np.float32)
candidates = g.predict(noise)
best = np.argsort(-to_host(d.predict(candidates))[:, 0])[:16]
save_grid((to_host(candidates)[best] + 1) / 2, Path(args.out) / "generated_image_nice.png", columns=4)
