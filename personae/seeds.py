"""Deterministic seed derivation: one experiment seed determines every other.

``derive_seed(parent, *labels)`` hashes the parent seed with labels (episode
parameters, replicate, agent name, step, purpose...) into a new seed, so every
sampling call and every random choice is reproducible and independent of the
order in which concurrent episodes happen to run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Seeds stay below 2**31 so every OpenAI-compatible server accepts them.
SEED_MODULUS = 2**31 - 1


def derive_seed(parent: int, *labels: Any) -> int:
    """Return a seed in ``[0, 2**31 - 1)`` determined by ``parent`` and ``labels``.

    Example:
        >>> derive_seed(7, "episode", 0) == derive_seed(7, "episode", 0)
        True
        >>> derive_seed(7, "episode", 0) != derive_seed(7, "episode", 1)
        True
    """
    payload = json.dumps([int(parent), *labels], sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.blake2b(payload.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SEED_MODULUS
