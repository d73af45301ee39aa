"""TLS terminated inside the attested process (``serve --tls``).

``certificates`` is pure (certificates, requests and SPKI hashes from a key and the
time); ``context`` turns a key and its chain into an ``ssl.SSLContext`` without a
plaintext key file on disk; ``commands`` is ``saferouter tls csr``. The key itself is
one of the gateway's sealed keys (``attestation.identity.TLS_KEY``).
"""
