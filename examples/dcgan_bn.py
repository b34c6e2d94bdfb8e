"""The TensorFlow 2 DCGAN tutorial (docs/tutorials.md, `dcgan_bn`), written out with scratchgan's public API.

The tutorial's `train_step` records both networks on a GradientTape and applies the
gradients of `discriminator_loss = bce(1, real_output) + bce(0, fake_output)` and
`generator_loss = bce(1, fake_output)`. Here the tape is explicit: D's gradients of the
real and the fake batch are accumulated (zero_grad once, backward twice) and applied in
one step; then G is trained through the frozen D on a fresh batch of noise.

    python examples/dcgan_bn.py --iterations 1000 --out runs/example-dcgan-bn
"""
import argparse
from pathlib import Path

import numpy as np

from scratchgan import Sequential
from scratchgan.datasets import load_mnist
from scratchgan.images import save_grid
from scratchgan.layers import Activation, BatchNormalization, Conv2D, Conv2DTranspose, Dense, Flatten, LeakyReLU, Reshape
from scratchgan.losses import BinaryCrossentropy, binary_accuracy
from scratchgan.optimizers import Adam
from scratchgan.script import parse_args
from scratchgan.backend import backend_module

parser = argparse.ArgumentParser()
parser.add_argument("--iterations", type=int, default=11750)  # 50 epochs of 60,000 / 256
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--sample-interval", type=int, default=200)
parser.add_argument("--out", default="runs/example-dcgan-bn")
args = parse_args(parser)  # also --backend numpy | numba | cupy
xp = backend_module()  # numpy, or cupy for --backend cupy: arrays live where the weights do

noise_dim = 100


def make_generator_model():
    return Sequential([
        Dense(7 * 7 * 256, activation="relu"), BatchNormalization(), Reshape((7, 7, 256)),
        Conv2DTranspose(128, 5, strides=1, padding="same"), BatchNormalization(), LeakyReLU(0.2),  # 7x7x128
        Conv2DTranspose(64, 5, strides=2, padding="same"), BatchNormalization(), LeakyReLU(0.2),   # 14x14x64
        Conv2DTranspose(1, 5, strides=2, padding="same"), Activation("tanh"),                      # 28x28x1
    ], input_shape=(noise_dim,), name="generator", seed=0)


def make_discriminator_model():
    return Sequential([
        Conv2D(64, 5, strides=2, padding="same"), LeakyReLU(0.2), BatchNormalization(),
        Conv2D(128, 5, strides=2, padding="same"), LeakyReLU(0.2), BatchNormalization(),
        Flatten(), Dense(1, activation="sigmoid"),
    ], input_shape=(28, 28, 1), name="discriminator", seed=1)


generator, discriminator = make_generator_model(), make_discriminator_model()
generator.summary()
discriminator.summary()
cross_entropy = BinaryCrossentropy()
generator_optimizer, discriminator_optimizer = Adam(lr=2e-4, beta_1=0.5), Adam(lr=2e-4, beta_1=0.5)

images, _ = load_mnist()  # the embedded 10,000 digits; the tutorial uses the 60,000
train_images = xp.asarray((images.astype(np.float32) - 127.5)[..., None] / 127.5)  # [-1, 1]
rng = np.random.default_rng(0)
seed = xp.asarray(rng.standard_normal((16, noise_dim), dtype=np.float32))


def discriminator_step(real_images):
    """One update on bce(1, D(real)) + bce(0, D(G(z))): gradients of both batches summed."""
    noise = xp.asarray(rng.standard_normal((len(real_images), noise_dim), dtype=np.float32))
    generated_images = generator.forward(noise, training=True)
    ones, zeros = xp.ones((len(real_images), 1), np.float32), xp.zeros((len(real_images), 1), np.float32)
    discriminator.zero_grad()
    real_output = discriminator.forward(real_images, training=True)
    real_loss = cross_entropy.forward(real_output, ones)
    discriminator.backward(cross_entropy.backward(), need_input_grad=False)  # grads += d real_loss
    fake_output = discriminator.forward(generated_images, training=True)
    fake_loss = cross_entropy.forward(fake_output, zeros)
    discriminator.backward(cross_entropy.backward(), need_input_grad=False)  # grads += d fake_loss
    discriminator_optimizer.step(discriminator.params, discriminator.grads)
    accuracy = 0.5 * (binary_accuracy(real_output, ones) + binary_accuracy(fake_output, zeros))
    return real_loss + fake_loss, accuracy


def generator_step(batch_size):
    """One update on bce(1, D(G(z))), D frozen: D's backward gives dL/dG(z) only."""
    noise = xp.asarray(rng.standard_normal((batch_size, noise_dim), dtype=np.float32))
    generator.zero_grad()
    fake_output = discriminator.forward(generator.forward(noise, training=True), training=True)
    gen_loss = cross_entropy.forward(fake_output, xp.ones_like(fake_output))
    generator.backward(discriminator.backward(cross_entropy.backward(), need_param_grads=False), need_input_grad=False)
    generator_optimizer.step(generator.params, generator.grads)
    return gen_loss


order = rng.permutation(len(train_images))
batches_per_epoch = len(train_images) // args.batch_size
for step in range(args.iterations):
    if step % batches_per_epoch == 0:  # a new shuffle every epoch, as tf.data's shuffle
        order = xp.asarray(rng.permutation(len(train_images)))
    j = step % batches_per_epoch
    disc_loss, accuracy = discriminator_step(train_images[order[j * args.batch_size:(j + 1) * args.batch_size]])
    gen_loss = generator_step(args.batch_size)
    if (step + 1) % args.sample_interval == 0 or step + 1 == args.iterations:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (step + 1, disc_loss, 100 * accuracy, gen_loss))
        predictions = generator.forward(seed, training=False)
        save_grid((predictions + 1) / 2, Path(args.out) / f"image_at_step_{step + 1:06d}.png", columns=4)
