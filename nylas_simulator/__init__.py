"""A local Nylas v3 API simulator (stdlib only) for tests, benchmarks and demos.

Usage::

    from nylas_simulator import NylasSimulator, Faults

    with NylasSimulator(seed=7, grants=24, records_per_grant=20) as sim:
        sim.url        # http://127.0.0.1:PORT
        sim.truth()    # {stream: {primary-key tuples}}
"""

from .faults import FAULT_KINDS, Faults
from .simulator import NylasSimulator

__all__ = ["FAULT_KINDS", "Faults", "NylasSimulator"]
