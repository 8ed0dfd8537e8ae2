#!/usr/bin/env python3
"""The same benchmark as bench/trainer_bench in PyTorch eager (Debian's python3-torch,
the same LibTorch underneath): images/s of a training step (forward + backward + SGD
step) and of evaluation for the CIFAR ResNets, option-A shortcuts, reference block.

    python3 bench/reference_torch.py --threads 2 --iters 5 --depths 3,9,18
"""
import argparse
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--depths", default="3,9,18")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    amp = device.type == "cuda" and a.amp != "off"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if a.amp == "bf16" else torch.float16
    print(f"reference_torch: PyTorch {torch.__version__} eager, device {device}, "
          f"{torch.get_num_threads()} intra-op threads, batch {a.batch}, {a.iters} timed iterations, "
          f"channels_last {'on' if a.channels_last else 'off'}, amp {a.amp if amp else 'off'}")
    print(f"{'network':8} {'params':>10} {'train img/s':>14} {'eval img/s':>14} {'step ms':>12}")
    g = torch.Generator().manual_seed(0)
    for n in [int(d) for d in a.depths.split(",")]:
        fmt = torch.channels_last if a.channels_last else torch.contiguous_format
        model = ResNet(n).to(device, memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x = torch.randn(a.batch, 3, 32, 32, generator=g).to(device).contiguous(memory_format=fmt)
        y = torch.randint(0, 10, (a.batch,), generator=g).to(device)

        def step():
            opt.zero_grad()
            with torch.autocast("cuda", dtype=dtype, enabled=amp):
                loss = F.cross_entropy(model(x).float(), y)
            loss.backward()
            opt.step()

        model.train()
        for _ in range(2):
            step()
        sync(device)
        t = time.perf_counter()
        for _ in range(a.iters):
            step()
        sync(device)
        train_s = time.perf_counter() - t
        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=amp):
            for _ in range(2):
                model(x)
            sync(device)
            t = time.perf_counter()
            for _ in range(a.iters):
                model(x)
            sync(device)
            eval_s = time.perf_counter() - t
        params = sum(p.numel() for p in model.parameters())
        train_ips, eval_ips = a.iters * a.batch / train_s, a.iters * a.batch / eval_s
        print(f"{'resnet' + str(6 * n + 2):8} {params:>10} {train_ips:>14.1f} {eval_ips:>14.1f} "
              f"{1000 * train_s / a.iters:>12.1f}")
        print(f"RESULT impl=python layers={6 * n + 2} train_img_s={train_ips:.2f} "
              f"eval_img_s={eval_ips:.2f}", flush=True)


if __name__ == "__main__":
    main()
