"""The dense GAN of a Keras digit-generation blog post (docs/tutorials.md, `mlp`), with scratchgan's API.

Read it next to the Keras tutorial: the same two networks, the same loop. The only
difference is that backpropagation is visible: every `backward` call below is a
hand-written backward pass, and the generator step runs D backward for dL/dx only.

    python examples/mlp.py --iterations 2000 --out runs/example
"""
import argparse
from pathlib import Path

import numpy as np

from scratchgan import Sequential
from scratchgan.datasets import load_mnist
from scratchgan.images import save_grid
from scratchgan.layers import Dense, Flatten, LeakyReLU, Reshape
from scratchgan.losses import BinaryCrossentropy, binary_accuracy
from scratchgan.optimizers import Adam
from scratchgan.script import parse_args
from scratchgan.backend import backend_module

parser = argparse.ArgumentParser()
parser.add_argument("--iterations", type=int, default=20000)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--sample-interval", type=int, default=1000)
parser.add_argument("--out", default="runs/example-mlp")
args = parse_args(parser)  # also --backend numpy | numba | cupy
xp = backend_module()  # numpy, or cupy for --backend cupy: arrays live where the weights do

img_shape, z_dim = (28, 28, 1), 100

# Generator: z (100) -> Dense(128) -> LeakyReLU(0.01) -> Dense(784, tanh) -> 28x28x1
generator = Sequential([
    Dense(128),
    LeakyReLU(negative_slope=0.01),
    Dense(28 * 28 * 1, activation="tanh"),
    Reshape(img_shape),
], input_shape=(z_dim,), name="generator", seed=0)

# Discriminator: image -> Flatten -> Dense(128) -> LeakyReLU(0.01) -> Dense(1, sigmoid)
discriminator = Sequential([
    Flatten(),
    Dense(128),
    LeakyReLU(negative_slope=0.01),
    Dense(1, activation="sigmoid"),
], input_shape=img_shape, name="discriminator", seed=1)

generator.summary()
discriminator.summary()

bce = BinaryCrossentropy()
d_optimizer, g_optimizer = Adam(), Adam()

# MNIST scaled to [-1, 1], the range of tanh (the embedded 10,000 images: no download)
images, _ = load_mnist()
X_train = xp.asarray((images.astype(np.float32) / 127.5 - 1.0)[..., None])

rng = np.random.default_rng(0)
real = xp.ones((args.batch_size, 1), dtype=np.float32)
fake = xp.zeros((args.batch_size, 1), dtype=np.float32)
fixed_z = xp.asarray(rng.standard_normal((16, z_dim), dtype=np.float32))


def train_discriminator_on(batch, labels):
    """One optimizer step of D on one batch; returns (loss, accuracy) before the step."""
    discriminator.zero_grad()
    p = discriminator.forward(batch)                 # forward, caching for backward
    loss = bce.forward(p, labels)
    discriminator.backward(bce.backward(), need_input_grad=False)  # dL/dp -> every layer's grads, no dx
    d_optimizer.step(discriminator.params, discriminator.grads)
    return loss, binary_accuracy(p, labels)


for iteration in range(args.iterations):
    # ---- train the discriminator: a real batch, then a fake batch ----
    imgs = X_train[xp.asarray(rng.integers(0, X_train.shape[0], args.batch_size))]
    z = xp.asarray(rng.standard_normal((args.batch_size, z_dim), dtype=np.float32))
    gen_imgs = generator.forward(z, training=False)  # like Keras's predict: no cache
    d_loss_real, acc_real = train_discriminator_on(imgs, real)
    d_loss_fake, acc_fake = train_discriminator_on(gen_imgs, fake)
    d_loss, accuracy = 0.5 * (d_loss_real + d_loss_fake), 0.5 * (acc_real + acc_fake)

    # ---- train the generator through the frozen discriminator ----
    z = xp.asarray(rng.standard_normal((args.batch_size, z_dim), dtype=np.float32))
    generator.zero_grad()
    gen_imgs = generator.forward(z)
    g_loss = bce.forward(discriminator.forward(gen_imgs), real)   # -log D(G(z))
    d_gen_imgs = discriminator.backward(bce.backward(), need_param_grads=False)  # dL/dG(z) only
    generator.backward(d_gen_imgs, need_input_grad=False)  # no dL/dz: z is drawn, not learned
    g_optimizer.step(generator.params, generator.grads)

    if (iteration + 1) % args.sample_interval == 0 or iteration + 1 == args.iterations:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (iteration + 1, d_loss, 100.0 * accuracy, g_loss))
        samples = (generator.forward(fixed_z, training=False) + 1) / 2
        save_grid(samples, Path(args.out) / f"iter_{iteration + 1:06d}.png", columns=4)
