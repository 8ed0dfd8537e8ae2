#!/usr/bin/env python3
"""The same benchmark as bench/trainer_bench in PyTorch eager (Debian's python3-torch,
the same LibTorch underneath): images/s of a training step (forward + backward + SGD
step) and of evaluation for the CIFAR ResNets, option-A shortcuts, reference block.

    python3 bench/reference_torch.py --threads 2 --iters 5 --depths 3,9,18
    python3 bench/reference_torch.py --device cuda --rounds 5 --iters 20 --modes fp32,bf16+cl
"""
import argparse
import contextlib
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.cin, self.cout, self.stride = cin, cout, stride

    def shortcut(self, x):
        if self.stride == 1 and self.cin == self.cout:
            return x
        s = x[:, :, ::self.stride, ::self.stride]
        return F.pad(s, (0, 0, 0, 0, 0, self.cout - self.cin))

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, n, width=16, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage in range(3):
            cout = width << stage
            for i in range(n):
                blocks.append(Block(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.stages(x)
        return self.fc(x.mean((2, 3)))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(a, device, n, amp, dtype, channels_last, g):
    """Median, lowest and highest images/s over a.rounds rounds of a.iters steps."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = ResNet(n).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(a.batch, 3, 32, 32, generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch,), generator=g).to(device)

    def autocast():
        return torch.autocast("cuda", dtype=dtype) if amp else contextlib.nullcontext()

    def step():
        opt.zero_grad()
        with autocast():
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()

    def timed(fn):
        rates = []
        for _ in range(a.rounds):
            sync(device)
            t = time.perf_counter()
            for _ in range(a.iters):
                fn()
            sync(device)
            rates.append(a.iters * a.batch / (time.perf_counter() - t))
        return statistics.median(rates), min(rates), max(rates)

    model.train()
    for _ in range(3):
        step()
    train = timed(step)
    model.eval()
    with torch.no_grad(), autocast():
        for _ in range(2):
            model(x)
        evaluation = timed(lambda: model(x))
    params = sum(p.numel() for p in model.parameters())
    return params, train, evaluation


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--depths", default="3,9,18")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--modes", default="",
                   help="several configurations in one process, e.g. fp32,bf16+cl "
                        "(overrides --amp and --channels-last)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    modes = a.modes.split(",") if a.modes else [
        (a.amp if a.amp != "off" else "fp32") + ("+cl" if a.channels_last else "")]
    g = torch.Generator().manual_seed(0)
    for mode in modes:
        precision = mode.split("+")[0]
        channels_last = mode.endswith("+cl")
        amp = device.type == "cuda" and precision in ("bf16", "fp16")
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        label = (precision if amp else "fp32") + ("+cl" if channels_last else "")
        print(f"reference_torch: PyTorch {torch.__version__} eager, device {device}, "
              f"{torch.get_num_threads()} intra-op threads, batch {a.batch}, {a.rounds} rounds of "
              f"{a.iters} steps, channels_last {'on' if channels_last else 'off'}, "
              f"amp {precision if amp else 'off'}")
        print(f"{'network':8} {'params':>10} {'train img/s (low..high)':>28} "
              f"{'eval img/s (low..high)':>28} {'step ms':>10}")
        for n in [int(d) for d in a.depths.split(",")]:
            params, (tr, tr_lo, tr_hi), (ev, ev_lo, ev_hi) = measure(
                a, device, n, amp, dtype, channels_last, g)
            train_col = f"{tr:.0f} ({tr_lo:.0f}..{tr_hi:.0f})"
            eval_col = f"{ev:.0f} ({ev_lo:.0f}..{ev_hi:.0f})"
            print(f"{'resnet' + str(6 * n + 2):8} {params:>10} {train_col:>28} {eval_col:>28} "
                  f"{1000 * a.batch / tr:>10.2f}")
            print(f"RESULT impl=python label={label}/K1/F1 layers={6 * n + 2} runs=1 fuse=1 "
                  f"train_img_s={tr:.2f} train_low={tr_lo:.2f} train_high={tr_hi:.2f} "
                  f"eval_img_s={ev:.2f} eval_low={ev_lo:.2f} eval_high={ev_hi:.2f}", flush=True)


if __name__ == "__main__":
    main()
