"""Jason Brownlee's MNIST DCGAN (docs/tutorials.md, `dcgan`), written out with scratchgan's public API.

`train`: each step D sees half a batch of real images (label 1) stacked on half a batch
of generated ones (label 0) in one update; then the composite model (G then frozen D)
is trained to make D say 1. Data stays in [0, 1], the range of G's sigmoid.

    python examples/dcgan.py --iterations 1000 --out runs/example-dcgan
"""
import argparse
from pathlib import Path

import numpy as np

from scratchgan import Sequential
from scratchgan.datasets import load_mnist
from scratchgan.images import save_grid
from scratchgan.layers import Conv2D, Conv2DTranspose, Dense, Dropout, Flatten, LeakyReLU, Reshape
from scratchgan.losses import BinaryCrossentropy, binary_accuracy
from scratchgan.optimizers import Adam
from scratchgan.script import parse_args
from scratchgan.backend import backend_module

parser = argparse.ArgumentParser()
parser.add_argument("--iterations", type=int, default=23400)  # 100 epochs of 60,000 / 256
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--sample-interval", type=int, default=234)
parser.add_argument("--out", default="runs/example-dcgan")
args = parse_args(parser)  # also --backend numpy | numba | cupy
xp = backend_module()  # numpy, or cupy for --backend cupy: arrays live where the weights do

latent_dim = 100


def define_discriminator(in_shape=(28, 28, 1)):
    return Sequential([
        Conv2D(64, 3, strides=2, padding="same"), LeakyReLU(0.2), Dropout(0.4),
        Conv2D(64, 3, strides=2, padding="same"), LeakyReLU(0.2), Dropout(0.4),
        Flatten(), Dense(1, activation="sigmoid"),
    ], input_shape=in_shape, name="discriminator", seed=1)


def define_generator(latent_dim):
    return Sequential([
        Dense(128 * 7 * 7), LeakyReLU(0.2), Reshape((7, 7, 128)),                   # foundation for 7x7
        Conv2DTranspose(128, 4, strides=2, padding="same"), LeakyReLU(0.2),         # up-sample to 14x14
        Conv2DTranspose(128, 4, strides=2, padding="same"), LeakyReLU(0.2),         # up-sample to 28x28
        Conv2D(1, 7, padding="same", activation="sigmoid"),
    ], input_shape=(latent_dim,), name="generator", seed=0)


d_model, g_model = define_discriminator(), define_generator(latent_dim)
d_model.summary()
g_model.summary()
d_opt, gan_opt = Adam(lr=0.0002, beta_1=0.5), Adam(lr=0.0002, beta_1=0.5)
bce = BinaryCrossentropy()

images, _ = load_mnist()
dataset = xp.asarray((images.astype(np.float32) / 255.0)[..., None])  # load_real_samples: [0, 1]
rng = np.random.default_rng(0)
fixed_points = rng.standard_normal((16, latent_dim), dtype=np.float32)
half_batch = args.batch_size // 2

for step in range(args.iterations):
    X_real = dataset[xp.asarray(rng.integers(0, len(dataset), half_batch))]        # generate_real_samples
    X_fake = g_model.forward(xp.asarray(rng.standard_normal((half_batch, latent_dim), dtype=np.float32)), training=False)
    X = xp.vstack((X_real, X_fake))
    y = xp.vstack((xp.ones((half_batch, 1)), xp.zeros((half_batch, 1)))).astype(np.float32)
    d_model.zero_grad()
    p = d_model.forward(X)
    d_loss, accuracy = bce.forward(p, y), binary_accuracy(p, y)
    d_model.backward(bce.backward(), need_input_grad=False)  # no dx: the input is images
    d_opt.step(d_model.params, d_model.grads)                                        # d_model.train_on_batch(X, y)

    X_gan = xp.asarray(rng.standard_normal((args.batch_size, latent_dim), dtype=np.float32))
    g_model.zero_grad()
    p = d_model.forward(g_model.forward(X_gan))
    g_loss = bce.forward(p, xp.ones_like(p))
    g_model.backward(d_model.backward(bce.backward(), need_param_grads=False), need_input_grad=False)
    gan_opt.step(g_model.params, g_model.grads)                                      # gan_model.train_on_batch

    if (step + 1) % args.sample_interval == 0 or step + 1 == args.iterations:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (step + 1, d_loss, 100 * accuracy, g_loss))
        save_grid(g_model.predict(fixed_points), Path(args.out) / f"generated_plot_{step + 1:06d}.png", columns=4)
