"""Import-time stub for ``lmdb`` inside the fairchem oracle subprocess.

fairchem.core.datasets.lmdb_dataset imports lmdb at module import; the oracle
never opens an LMDB dataset, so any use is an error.
"""

__version__ = "0.0.0+oracle-stub"


def open(*args, **kwargs):  # noqa: A001
    raise RuntimeError("lmdb is stubbed in the fairchem oracle")


class Environment:  # referenced only in type hints
    pass
