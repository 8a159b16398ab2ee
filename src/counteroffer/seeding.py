"""One way to derive a seed from parts: :func:`derive_seed`.

Every seed the project derives from other values (an episode's seed from the run's seed, the product and the
rollout; a turn's sampling seed from the episode's seed and the turn; which seller a product meets; which train
products are held out) is a stable hash of those values, so it is the same on every machine, in every process and
in every Python session (unlike ``hash()``), and different parts give unrelated seeds (unlike ``seed * K + turn``).
A name among the parts (``"turn"``, ``"seller"``, ``"validation"``) keeps two uses of the same values independent.

Seeds the user gives directly (``--seed``, the bootstrap's seed, ``phases --shuffle SEED``) are used as given, and
the AmazonHistoryPrice train/test split keeps its own fixed shuffle (``catalog.recipes.amazon_split``): the
published 802/128 split must not move.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(*parts: object, bits: int = 63) -> int:
    """A seed in ``[0, 2**bits)`` that is a stable function of ``parts``.

    The parts are written with ``str`` and joined by ``|``, and the seed is the top ``bits`` bits of the 8-byte
    BLAKE2b digest of that text. So ``derive_seed(0, "B00X", 2)`` is the same number everywhere, and any change of
    a part gives an unrelated one. ``bits`` is at most 64; the default 63 fits a signed 64-bit integer (numpy,
    torch), 31 fits the ``int32`` seeds some endpoints accept, 64 gives a uniform 64-bit draw. Parts should not
    contain ``|`` where that would make two different part lists write the same text.
    """
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be from 1 to 64, got {bits}")
    text = "|".join(map(str, parts))
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return digest >> (64 - bits)
