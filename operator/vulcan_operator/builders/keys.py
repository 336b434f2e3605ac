"""The engine's generated keys (SECRET_KEY, JWT_SECRET_KEY): pure functions, no I/O.

The operator generates the keys the user does not reference, once: the reconciler reads them
back from the live keys Secret (`keys_from_secret_data`) and fills in only what is missing
(`ensure_keys`); a new rotate-secrets request replaces them all. The values go into
`EngineInputs.keys`; `builders.engine.build_secret` writes them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Mapping

from vulcan_operator.api.engine import VulcanEngineSpec

SECRET_KEY = "SECRET_KEY"
JWT_SECRET_KEY = "JWT_SECRET_KEY"
KEY_NAMES = (SECRET_KEY, JWT_SECRET_KEY)
KEY_BYTES = 48  # secrets.token_urlsafe(48): 384 random bits


def generated_key_names(spec: VulcanEngineSpec) -> list[str]:
    """The keys the operator generates: those the user does not reference."""
    wanted = []
    if spec.secrets.secretKeyRef is None:
        wanted.append(SECRET_KEY)
    if spec.secrets.jwtSecretKeyRef is None:
        wanted.append(JWT_SECRET_KEY)
    return wanted


def generate_keys(key_names: Iterable[str] = KEY_NAMES) -> dict[str, str]:
    """Fresh random values (384 bits each, URL-safe text) for SECRET_KEY and JWT_SECRET_KEY."""
    return {key: secrets.token_urlsafe(KEY_BYTES) for key in key_names}


def ensure_keys(
    spec: VulcanEngineSpec, existing: Mapping[str, str] | None, *, rotate: bool = False
) -> dict[str, str] | None:
    """The key values to build with: existing ones kept, missing ones generated.

    `existing` comes from the live keys Secret (`keys_from_secret_data`); with `rotate`
    (a new rotate-secrets value) every generated key is new. None when the user references
    both keys.
    """
    wanted = generated_key_names(spec)
    if not wanted:
        return None
    kept = {} if rotate else {k: v for k, v in (existing or {}).items() if k in wanted and v}
    return {**generate_keys(k for k in wanted if k not in kept), **kept}


def keys_from_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """The key values of an existing keys Secret, from its (base64) `data`.

    Returns only well-formed, non-empty SECRET_KEY/JWT_SECRET_KEY entries; the caller
    generates whatever is missing.
    """
    found: dict[str, str] = {}
    for key in KEY_NAMES:
        encoded = (data or {}).get(key)
        if not encoded:
            continue
        try:
            value = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if value:
            found[key] = value
    return found
