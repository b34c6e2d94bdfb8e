"""Chollet's CIFAR-10 frog GAN ("Deep Learning with Python", docs/tutorials.md), with scratchgan's API.

The book's loop: decode random points to fake images, stack them on a batch of real
frogs with labels 1 (fake) and 0 (real), add U(0, 0.05) noise to the labels ("an
important trick"), train D; then train the gan (G through frozen D) on "misleading
targets" 0, "all real images". RMSprop with gradient clipping and decay; real batches
are taken in order. The book scales images to [0, 1]; we use [-1, 1], tanh's range.

    python examples/cifar_frog.py --data cifar10 --iterations 2000 --out runs/example-frog
"""
import argparse
from pathlib import Path

import numpy as np

from scratchgan import Sequential
from scratchgan.datasets import load_dataset
from scratchgan.images import save_grid
from scratchgan.layers import Conv2D, Conv2DTranspose, Dense, Dropout, Flatten, LeakyReLU, Reshape
from scratchgan.losses import BinaryCrossentropy, binary_accuracy
from scratchgan.optimizers import RMSprop
from scratchgan.script import errors_as_one_line, parse_args
from scratchgan.backend import backend_module

parser = argparse.ArgumentParser()
parser.add_argument("--iterations", type=int, default=10000)
parser.add_argument("--batch-size", type=int, default=20)
parser.add_argument("--sample-interval", type=int, default=100)
parser.add_argument("--data", default="cifar10", help="cifar10, a CIFAR-10 archive or folder (frogs are kept)")
parser.add_argument("--out", default="runs/example-frog")
args = parse_args(parser)  # also --backend numpy | numba | cupy
xp = backend_module()  # numpy, or cupy for --backend cupy: arrays live where the weights do

latent_dim, height, width, channels = 32, 32, 32, 3

generator = Sequential([
    Dense(128 * 16 * 16), LeakyReLU(), Reshape((16, 16, 128)),
    Conv2D(256, 5, padding="same"), LeakyReLU(),
    Conv2DTranspose(256, 4, strides=2, padding="same"), LeakyReLU(),   # up-sample to 32x32
    Conv2D(256, 5, padding="same"), LeakyReLU(),
    Conv2D(256, 5, padding="same"), LeakyReLU(),
    Conv2D(channels, 7, padding="same", activation="tanh"),
], input_shape=(latent_dim,), name="generator", seed=0)

discriminator = Sequential([
    Conv2D(128, 3), LeakyReLU(),
    Conv2D(128, 4, strides=2), LeakyReLU(),
    Conv2D(128, 4, strides=2), LeakyReLU(),
    Conv2D(128, 4, strides=2), LeakyReLU(),
    Flatten(), Dropout(0.4), Dense(1, activation="sigmoid"),
], input_shape=(height, width, channels), name="discriminator", seed=1)
generator.summary()
discriminator.summary()

discriminator_optimizer = RMSprop(lr=0.0008, clipvalue=1.0, decay=1e-8)
gan_optimizer = RMSprop(lr=0.0004, clipvalue=1.0, decay=1e-8)
bce = BinaryCrossentropy()

with errors_as_one_line(parser.prog):  # no CIFAR-10 here, or no frog in --data: one line, no traceback
    frogs = load_dataset(args.data, (height, width, channels), ["frog"]).images  # class 6
x_train = xp.asarray(frogs.astype(np.float32) / 127.5 - 1.0)
rng = np.random.default_rng(0)
fixed_vectors = rng.standard_normal((16, latent_dim), dtype=np.float32)
batch_size, start = args.batch_size, 0

for step in range(args.iterations):
    random_latent_vectors = xp.asarray(rng.standard_normal((batch_size, latent_dim), dtype=np.float32))
    generated_images = generator.forward(random_latent_vectors, training=False)
    stop = start + batch_size
    real_images = x_train[xp.arange(start, stop) % len(x_train)]
    combined_images = xp.concatenate([generated_images, real_images])
    labels = xp.concatenate([xp.ones((batch_size, 1)), xp.zeros((batch_size, 1))]).astype(np.float32)
    labels += xp.asarray((0.05 * rng.random(labels.shape)).astype(np.float32))   # noise on the labels
    discriminator.zero_grad()
    p = discriminator.forward(combined_images)
    d_loss, accuracy = bce.forward(p, labels), binary_accuracy(p, labels)
    discriminator.backward(bce.backward(), need_input_grad=False)  # no dx: the input is images
    discriminator_optimizer.step(discriminator.params, discriminator.grads)

    random_latent_vectors = xp.asarray(rng.standard_normal((batch_size, latent_dim), dtype=np.float32))
    misleading_targets = xp.zeros((batch_size, 1), np.float32)          # "these are all real images"
    generator.zero_grad()
    p = discriminator.forward(generator.forward(random_latent_vectors))
    a_loss = bce.forward(p, misleading_targets)
    generator.backward(discriminator.backward(bce.backward(), need_param_grads=False), need_input_grad=False)
    gan_optimizer.step(generator.params, generator.grads)

    start = 0 if stop > len(x_train) - batch_size else stop
    if (step + 1) % args.sample_interval == 0 or step + 1 == args.iterations:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (step + 1, d_loss, 100 * accuracy, a_loss))
        save_grid((generator.predict(fixed_vectors) + 1) / 2, Path(args.out) / f"generated_frog{step + 1:06d}.png",
                  columns=4)
