"""DEVA's temporal propagation network (spec §1) and its checkpoint loading.

Architecture modules take architecture arguments only; ``checkpoint.py`` is the one place that
opens weight files. Parameter names follow the official ``DEVA-propagation.pth``.
"""

from .aggregate import aggregate, masks_to_probabilities
from .checkpoint import build_network, load_propagation_weights, remap_official_keys
from .model import PropagationNetwork, tiny_propagation_network
from .readout import read_memory, read_values, similarity, softmax_affinity, topk_affinity

__all__ = [
    "PropagationNetwork",
    "aggregate",
    "build_network",
    "load_propagation_weights",
    "masks_to_probabilities",
    "read_memory",
    "read_values",
    "remap_official_keys",
    "similarity",
    "softmax_affinity",
    "topk_affinity",
    "tiny_propagation_network",
]
