"""Bring your own provider key, sealed to the attested gateway (issue 13).

A client seals its provider key to the X25519 public key a verified quote names
(``byok_public_key``); only the process holding the private half — the measured build —
can open it. :mod:`.sealing` is the format both sides share; :mod:`.keyring` opens them in the
gateway, once per worker, for the attempts that carry them.
"""
