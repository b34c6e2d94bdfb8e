"""The zoo's models and training iteration in PyTorch: the comparison column of ``scratchgan bench``.

It lives in examples/, outside the package, so that scratchgan never imports a
deep-learning framework; the bench loads this file from a source checkout when PyTorch
happens to be installed (it is never a dependency).
Each scratchgan layer becomes the PyTorch layer with the same shapes and FLOPs (NCHW
inside, TensorFlow's asymmetric "same" padding reproduced with ZeroPad2d when needed),
and the iteration follows the recipe: D steps by d_mode, then G through a frozen D.
"""
from __future__ import annotations

import torch
from torch import nn

from scratchgan import layers as L
from scratchgan.ops.geometry import conv_output_length


class _NHWCReshape(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target  # (H, W, C)

    def forward(self, x):
        h, w, c = self.target
        return x.reshape(x.shape[0], h, w, c).permute(0, 3, 1, 2)


def _conv(layer, in_shape, transpose):
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    _, h, w, c = in_shape
    if transpose:  # Keras "same": out = in * s; "valid": (in - 1) * s + k
        if layer.padding == "same":
            ph, pw = -(-(kh - sh) // 2), -(-(kw - sw) // 2)
            oph, opw = 2 * ph - (kh - sh), 2 * pw - (kw - sw)
        else:
            ph = pw = oph = opw = 0
        return [nn.ConvTranspose2d(c, layer.filters, (kh, kw), (sh, sw), (ph, pw), (oph, opw))]
    _, top, bottom = conv_output_length(h, kh, sh, layer.padding)
    _, left, right = conv_output_length(w, kw, sw, layer.padding)
    if top == bottom and left == right:
        return [nn.Conv2d(c, layer.filters, (kh, kw), (sh, sw), (top, left))]
    return [nn.ZeroPad2d((left, right, top, bottom)), nn.Conv2d(c, layer.filters, (kh, kw), (sh, sw))]


_ACT = {"linear": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def translate(model) -> nn.Sequential:
    """A torch.nn.Sequential with the layers of scratchgan Sequential ``model``."""
    out = []
    image = len(model.input_shape) == 4  # torch tensors are NCHW while we are in an image
    for layer in model.layers:
        shape, nxt = layer.input_shape, layer.output_shape
        if isinstance(layer, L.Dense):
            out.append(nn.Linear(shape[-1], layer.units))
        elif isinstance(layer, (L.Conv2D, L.Conv2DTranspose)):
            out += _conv(layer, shape, isinstance(layer, L.Conv2DTranspose))
        elif isinstance(layer, L.BatchNormalization):
            out.append(nn.BatchNorm2d(shape[-1], eps=layer.epsilon, momentum=1 - layer.momentum)
                       if image else nn.BatchNorm1d(shape[-1], eps=layer.epsilon, momentum=1 - layer.momentum))
        elif isinstance(layer, L.LeakyReLU):
            out.append(nn.LeakyReLU(layer.negative_slope))
        elif isinstance(layer, L.Activation):
            pass
        elif isinstance(layer, L.Dropout):
            out.append(nn.Dropout(layer.rate))
        elif isinstance(layer, L.MaxPooling2D):
            out.append(nn.MaxPool2d(layer.pool_size, layer.strides))
        elif isinstance(layer, L.UpSampling2D):
            out.append(nn.Upsample(scale_factor=layer.size, mode="nearest"))
        elif isinstance(layer, L.Reshape):
            out.append(_NHWCReshape(nxt[1:]))
            image = True
        elif isinstance(layer, L.Flatten):
            out.append(nn.Flatten())
            image = False
        else:
            raise TypeError(f"no PyTorch translation for {type(layer).__name__}")
        activation = getattr(layer, "activation", "linear")
        if _ACT.get(activation):
            out.append(_ACT[activation]())
    return nn.Sequential(*out)


def _optimizer(spec, params):
    spec = dict(spec)
    name, lr = spec.pop("name"), spec.pop("lr")
    if name == "Adam":
        return torch.optim.Adam(params, lr, betas=(spec.get("beta_1", 0.9), spec.get("beta_2", 0.999)),
                                eps=spec.get("epsilon", 1e-7))
    if name == "SGD":
        return torch.optim.SGD(params, lr, momentum=spec.get("momentum", 0), nesterov=spec.get("nesterov", False))
    return torch.optim.RMSprop(params, lr, alpha=spec.get("rho", 0.9), eps=spec.get("epsilon", 1e-7))


def cuda_available() -> bool:
    return torch.cuda.is_available()


class TorchGAN:
    """One recipe iteration in PyTorch eager mode, on random data of the right shape.

    ``device="cuda"`` runs it on the GPU (the comparison for the cupy backend). Like
    scratchgan's trainer, each step reads its D and G losses back as Python floats.
    """

    def __init__(self, generator, discriminator, recipe, seed=0, threads=None, device="cpu"):
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.G, self.D, self.r = translate(generator).to(self.device), translate(discriminator).to(self.device), recipe
        self.d_opt = _optimizer(recipe.d_optimizer, self.D.parameters())
        self.g_opt = _optimizer(recipe.g_optimizer, self.G.parameters())
        h, w, c = recipe.image_shape
        self.data = torch.rand(max(4 * recipe.batch_size, 64), c, h, w, device=self.device) * 2 - 1
        self.bce = nn.BCELoss()

    def synchronize(self):
        """Wait for queued CUDA work (timings need it); nothing to wait for on the CPU."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _z(self, n):
        if self.r.latent == "uniform":
            return torch.rand(n, self.r.z_dim, device=self.device) * 2 - 1
        return torch.randn(n, self.r.z_dim, device=self.device)

    def step(self):
        r, n = self.r, self.r.d_batch
        for _ in range(r.d_steps):
            real = self.data[torch.randint(0, len(self.data), (n,), device=self.device)]
            with torch.no_grad():
                self.G.train(r.fake_training_mode)
                fake = self.G(self._z(n))
                self.G.train(True)
            ones = torch.full((n, 1), r.real_label, device=self.device)
            zeros = torch.full((n, 1), r.fake_label, device=self.device)
            self.d_opt.zero_grad()
            if r.d_mode == "concat":
                d_loss = self.bce(self.D(torch.cat([real, fake])), torch.cat([ones, zeros]))
                d_loss.backward()
            elif r.d_mode == "sum":
                d_loss = self.bce(self.D(real), ones) + self.bce(self.D(fake), zeros)
                d_loss.backward()
            else:
                d_loss = self.bce(self.D(real), ones)
                d_loss.backward()
                self.d_opt.step()
                self.d_opt.zero_grad()
                self.bce(self.D(fake), zeros).backward()
            self.d_opt.step()
            d_loss = float(d_loss.detach())
        for p in self.D.parameters():
            p.requires_grad_(False)
        self.g_opt.zero_grad()
        p = self.D(self.G(self._z(r.batch_size)))
        g_loss = self.bce(p, torch.full_like(p, r.real_label))
        g_loss.backward()
        self.g_opt.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        return d_loss, float(g_loss.detach())
