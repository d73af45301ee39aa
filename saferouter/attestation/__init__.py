"""Attestation: the signing identity, the service measurement, quotes, and the logs."""
