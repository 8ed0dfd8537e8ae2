#!/usr/bin/env python3
"""Turns the RESULT lines of trainer_bench and reference_torch.py into the GPU table of
bench/README.md and the projected wall time of the depth study (standard library only,
so it runs under any python3).

    python3 bench/gpu_table.py RESULTS_FILE [--device NAME] > table.md

The projection, for every configuration measured at all five depths of the study
(ResNet-20/32/44/56/110, sweeps/fig6-depth.yaml): 5 seeds x 200 epochs x (50,000
training images / training images/s + 10,000 test images / evaluation images/s),
summed over the depths, with the configuration's aggregate images/s (K runs at
once, F fused seeds). It assumes the GPU is kept full (enough runs queued for K
slots, the 5 seeds of a cell fused as one gang) and counts no start-up, checkpoint
or coordinator time: a lower bound on the sweep's wall time on this GPU.
"""
import argparse
import collections

STUDY_LAYERS = (20, 32, 44, 56, 110)
SEEDS, EPOCHS, TRAIN_IMAGES, TEST_IMAGES = 5, 200, 50000, 10000


def parse(path):
    rows = collections.OrderedDict()
    for line in open(path):
        if not line.startswith("RESULT ") or " layers=" not in line:
            continue
        f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        key = (f["impl"], f["label"])
        if "error" in f:
            rows.setdefault(key, {})[int(f["layers"])] = None
            continue
        rows.setdefault(key, {})[int(f["layers"])] = {k: float(v) for k, v in f.items()
                                                      if k.endswith(("_img_s", "_low", "_high"))}
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--device", default="this GPU")
    a = p.parse_args()
    rows = parse(a.results)
    layers_shown = (20, 56, 110)
    print(f"Training images/s at batch 128 on {a.device}: median of the rounds (lowest..highest "
          f"round); K runs at once and F fused seeds count every run's images.\n")
    print("| implementation | configuration | " +
          " | ".join(f"ResNet-{l} train" for l in layers_shown) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in layers_shown) + " |")
    for (impl, label), by_layer in rows.items():
        cells = []
        for l in layers_shown:
            r = by_layer.get(l, "absent")
            if r == "absent":
                cells.append("")
            elif r is None:
                cells.append("failed")
            else:
                cells.append(f"{r['train_img_s']:,.0f} ({r['train_low']:,.0f}..{r['train_high']:,.0f})")
        name = "resweep (LibTorch C++)" if impl == "cpp" else "PyTorch eager (Python)"
        print(f"| {name} | {label} | " + " | ".join(cells) + " |")

    print(f"\nProjected wall time of the depth study ({len(STUDY_LAYERS)} depths x {SEEDS} seeds x "
          f"{EPOCHS} epochs, training and per-epoch evaluation) from each configuration measured "
          f"at every depth:\n")
    print("| implementation | configuration | projected study time | longest term |")
    print("| --- | --- | ---: | --- |")
    best = None
    for (impl, label), by_layer in rows.items():
        if not all(isinstance(by_layer.get(l), dict) for l in STUDY_LAYERS):
            continue
        terms = {l: SEEDS * EPOCHS * (TRAIN_IMAGES / by_layer[l]["train_img_s"] +
                                      TEST_IMAGES / by_layer[l]["eval_img_s"])
                 for l in STUDY_LAYERS}
        total = sum(terms.values())
        longest = max(terms, key=terms.get)
        name = "resweep (LibTorch C++)" if impl == "cpp" else "PyTorch eager (Python)"
        print(f"| {name} | {label} | {total / 60:,.1f} min | ResNet-{longest}: "
              f"{terms[longest] / 60:,.1f} min |")
        if impl == "cpp" and (best is None or total < best[0]):
            best = (total, label)
    if best:
        print(f"\nBest resweep configuration: {best[1]}, projected {best[0] / 60:,.1f} min "
              f"(goal: under 45 min on one H100).")
    print("\nRESULT projection " + ("none" if not best else
                                    f"label={best[1]} minutes={best[0] / 60:.2f}"))


if __name__ == "__main__":
    main()
