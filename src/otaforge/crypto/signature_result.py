"""What a successful signature verification found, and the digest a signature block covers.

Its own module so that the v1 scheme (``sbv1``) does not load the v2 signing code.
"""

from __future__ import annotations

from otaforge.crypto import keys as k
from otaforge.formats.record import record


@record
class SignatureResult:
    """A successful verification.

    Attributes:
        scheme: "rsa3072", "ecdsa256", ... ("v1" for the v1 signed-app scheme).
        key_index: index (in the given keys or eFuse digests) of the key that matched.
        block_count: signature blocks in the sector (1 for v1).
        signed_len: bytes covered by the signature (the padded content before the sector).
        block_index: the block that verified with that key.
        image_digest: the digest the signature covers.
    """

    scheme: str
    key_index: int
    block_count: int
    signed_len: int
    block_index: int = 0
    image_digest: bytes = b""


def image_digest(content: bytes, scheme: str) -> bytes:
    """The image digest a block of ``scheme`` carries: SHA-384 for P-384, else SHA-256."""
    if scheme == "ecdsa384":
        return k.sha384(content)
    return k.sha256(content)
