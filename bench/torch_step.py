"""The same style-transfer step in PyTorch/cuDNN, for a same-run comparison on a GPU machine that
has PyTorch (the project does not depend on it; without it this says so and exits 0).

VGG19 to block5_conv2 with average pooling, NHWC float32 input, Gram losses at the seed's five
style layers, the content loss at block5_conv2 and total variation, backward to the image: what
``OrtStep`` computes. The weights are random (the time does not depend on their values).

    python -m bench.torch_step --sizes 256,512,1024 --out torch_step.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

CONVS = ((3, 64), (64, 64), "pool", (64, 128), (128, 128), "pool", (128, 256), (256, 256), (256, 256), (256, 256),
         "pool", (256, 512), (512, 512), (512, 512), (512, 512), "pool", (512, 512), (512, 512))
NAMES = ("block1_conv1", "block1_conv2", None, "block2_conv1", "block2_conv2", None, "block3_conv1", "block3_conv2",
         "block3_conv3", "block3_conv4", None, "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4", None,
         "block5_conv1", "block5_conv2")
STYLE = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT = "block5_conv2"


def measure(torch, size: int, tf32: bool, half: bool, repeats: int) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    dtype = torch.float16 if half else torch.float32
    generator = torch.Generator(device="cpu").manual_seed(0)
    weights = [(torch.randn(o, i, 3, 3, generator=generator) * (2 / (9 * i)) ** 0.5, torch.zeros(o))
               if c != "pool" else None for c in CONVS for i, o in [c if c != "pool" else (0, 0)]]
    weights = [None if w is None else (w[0].to(device, dtype).contiguous(memory_format=torch.channels_last),
                                       w[1].to(device, dtype)) for w in weights]
    mean = torch.tensor([103.939, 116.779, 123.68], device=device, dtype=dtype).view(1, 3, 1, 1)

    def features(x):
        x = x.permute(0, 3, 1, 2)[:, [2, 1, 0]] * 255 - mean
        x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        for layer, name in zip(weights, NAMES):
            if layer is None:
                x = torch.nn.functional.avg_pool2d(x, 2)
            else:
                x = torch.relu(torch.nn.functional.conv2d(x, layer[0], layer[1], padding=1))
                out[name] = x
        return out

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape(c, h * w).float()
        return f @ f.t() / (h * w)

    image = torch.rand(1, size, size, 3, device=device, dtype=dtype, generator=None)
    with torch.no_grad():
        target = features(torch.rand_like(image))
        grams = {n: gram(target[n]) for n in STYLE}
        content = target[CONTENT].float()

    def step():
        x = image.clone().requires_grad_(True)
        f = features(x)
        style = sum(((gram(f[n]) - grams[n]) ** 2).mean() for n in STYLE) / len(STYLE)
        j_content = ((f[CONTENT].float() - content) ** 2).mean()
        xf = x.float()
        tv = ((xf[:, 1:] - xf[:, :-1]) ** 2).sum() + ((xf[:, :, 1:] - xf[:, :, :-1]) ** 2).sum()
        loss = 1e4 * j_content + style + 10 * tv
        loss.backward()
        return loss, x.grad

    first = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - first
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, grad = step()
        grad_host = grad.float().cpu()   # the optimizer of a CPU loop needs it on the host, as OrtStep gives it
        times.append(time.perf_counter() - start)
    on_device = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        on_device.append(time.perf_counter() - start)
    times.sort(), on_device.sort()
    return {"size": size, "tf32": tf32, "fp16": half, "ms_gradient_to_host": times[len(times) // 2] * 1e3,
            "ms_on_device": on_device[len(on_device) // 2] * 1e3, "first_ms": first * 1e3,
            "finite": bool(grad_host.isfinite().all())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench.torch_step: PyTorch is not installed here; nothing measured")
        return 0
    if not torch.cuda.is_available():
        print("bench.torch_step: PyTorch sees no CUDA device; nothing measured")
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for tf32, half in ((False, False), (True, False), (False, True)):
            try:
                rows.append(measure(torch, size, tf32, half, args.repeats))
            except Exception as exc:
                rows.append({"size": size, "tf32": tf32, "fp16": half, "error": str(exc).splitlines()[0]})
            print(json.dumps(rows[-1]), flush=True)
    result = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
