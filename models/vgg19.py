"""The VGG19 convolutional trunk: layer names, shapes and order (no TensorFlow here).

Names follow ``keras.applications.VGG19`` so that any Keras VGG19 weights file
plugs in, and so that users can name layers as every style-transfer tool does.
"""
from __future__ import annotations

# (block, number of convs, channels)
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

CONV_LAYERS: tuple[str, ...] = tuple(
    f"block{b}_conv{i}" for b, n, _ in _BLOCKS for i in range(1, n + 1))
POOL_LAYERS: tuple[str, ...] = tuple(f"block{b}_pool" for b, _, _ in _BLOCKS)
ALL_LAYERS: tuple[str, ...] = tuple(
    name for b, n, _ in _BLOCKS
    for name in [f"block{b}_conv{i}" for i in range(1, n + 1)] + [f"block{b}_pool"])

# Caffe-style preprocessing used by keras.applications.vgg19.preprocess_input:
# RGB [0, 255] -> BGR, minus the ImageNet mean per channel (BGR order).
BGR_MEAN = (103.939, 116.779, 123.68)


def kernel_shapes() -> dict[str, tuple[tuple[int, int, int, int], tuple[int]]]:
    """Keras-layout (kh, kw, in, out) kernel shape and bias shape of every conv layer."""
    shapes, channels_in = {}, 3
    for b, n, channels in _BLOCKS:
        for i in range(1, n + 1):
            shapes[f"block{b}_conv{i}"] = ((3, 3, channels_in, channels), (channels,))
            channels_in = channels
    return shapes


def layer_index(name: str) -> int:
    return ALL_LAYERS.index(name)


def check_layers(names) -> None:
    """Raise ValueError naming the first unknown layer."""
    for name in names:
        if name not in ALL_LAYERS:
            raise ValueError(f"unknown VGG19 layer {name!r}; expected one of: {', '.join(CONV_LAYERS)}")


def deepest(names) -> str:
    """The layer the network can be cut after and still compute every name."""
    return max(names, key=layer_index)


def channels(name: str) -> int:
    """Channels of a layer's output (a pooling layer keeps its block's)."""
    block = int(name[len("block"):name.index("_")])
    return _BLOCKS[block - 1][2]


def min_side(names) -> int:
    """The smallest image side (px) that leaves the deepest of ``names`` at least 1 px: each
    pooling before it halves the map (VALID, rounding down)."""
    pools = sum(1 for name in ALL_LAYERS[:layer_index(deepest(names)) + 1] if name.endswith("pool"))
    return 2 ** pools


def conv_flops(height: int, width: int, upto: str) -> float:
    """Multiply-add FLOPs (2 per MAC) of the convolutions up to and including ``upto``."""
    flops, h, w = 0.0, height, width
    for name in ALL_LAYERS[:layer_index(upto) + 1]:
        if name.endswith("pool"):
            h, w = h // 2, w // 2
        else:
            kh, kw, cin, cout = kernel_shapes()[name][0]
            flops += 2.0 * h * w * kh * kw * cin * cout
    return flops
