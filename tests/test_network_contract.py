"""The DEVA network passes the whole propagator contract, tracking checks included.

Random weights cannot track, so this uses a small network trained by deva's own training loop
(``python -m bench.train_test_weights``, reproducible from its seed) and committed as
``tests/data/tiny_propagation.pth``; it loads through the same ``build_network`` path as
``deva track --propagator network --checkpoint FILE``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from propagator_contract import PropagatorContract

from deva.propagation.network.checkpoint import build_network
from deva.propagation.network.model import PropagationNetwork
from deva.propagation.network.propagator import NetworkPropagator

WEIGHTS = Path(__file__).parent / "data" / "tiny_propagation.pth"


@pytest.fixture(scope="module")
def trained() -> PropagationNetwork:
    return build_network(WEIGHTS, "cpu")


class TestNetworkPropagatorContract(PropagatorContract):
    @pytest.fixture
    def make_propagator(self, trained: PropagationNetwork) -> Callable[[], NetworkPropagator]:
        return lambda: NetworkPropagator(trained)
