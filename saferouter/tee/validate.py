"""Policy checks on an authentic report (pure): is it the machine and build we expect?

After :func:`~saferouter.tee.verify.verify_report` has shown the report is AMD's (or the
demo's), :func:`validate_report` checks it against a :class:`Policy` — go-sev-guest
``validate.SnpAttestation`` (../shared/reference/sevsnp.md §6.1) narrowed to what
SafeRouter relies on. Every failure is a :class:`PolicyError` naming the field.
"""

from __future__ import annotations

import hmac

import attrs

from ..errors import PolicyError
from .abi import (
    PLATFORM_SMT_EN,
    POLICY_DEBUG,
    POLICY_MIGRATE_MA,
    POLICY_SINGLE_SOCKET,
    POLICY_SMT,
    Product,
    Report,
    Tcb,
)


@attrs.frozen
class Policy:
    allow_debug: bool = False
    allow_migration_agent: bool = False
    allow_smt: bool = True
    require_single_socket: bool = False
    minimum_tcb: Tcb | None = None  # REPORTED_TCB and LAUNCH_TCB must be ≥ it
    minimum_abi: tuple[int, int] = (0, 0)
    expected_measurement: bytes | None = None
    expected_report_data: bytes | None = None
    expected_host_data: bytes | None = None
    vmpl: int | None = 0
    allow_provisional_firmware: bool = False


def validate_report(report: Report, product: Product, policy: Policy) -> None:
    """Raise the first :class:`PolicyError`, or return."""
    if report.policy & POLICY_DEBUG and not policy.allow_debug:
        raise PolicyError("POLICY.DEBUG", "debugging is allowed: the host can read the guest")
    if report.policy & POLICY_MIGRATE_MA and not policy.allow_migration_agent:
        raise PolicyError("POLICY.MIGRATE_MA", "a migration agent is allowed")
    if not policy.allow_smt and (
        report.policy & POLICY_SMT or report.platform_info & PLATFORM_SMT_EN
    ):
        raise PolicyError("POLICY.SMT", "simultaneous multithreading is allowed or enabled")
    if policy.require_single_socket and not report.policy & POLICY_SINGLE_SOCKET:
        raise PolicyError("POLICY.SINGLE_SOCKET", "the guest may span sockets")
    if report.abi_version < policy.minimum_abi:
        raise PolicyError("POLICY.ABI", f"ABI {report.abi_version} is below {policy.minimum_abi}")
    if policy.vmpl is not None and report.vmpl != policy.vmpl:
        raise PolicyError("VMPL", f"the report is for VMPL {report.vmpl}, not {policy.vmpl}")
    if policy.minimum_tcb is not None:
        for name, raw in (("REPORTED_TCB", report.reported_tcb), ("LAUNCH_TCB", report.launch_tcb)):
            tcb = report.tcb(raw, product)
            if not policy.minimum_tcb <= tcb:
                raise PolicyError(name, f"{tcb} is below the minimum {policy.minimum_tcb}")
    if not policy.allow_provisional_firmware and (
        report.committed_tcb != report.current_tcb
        or (report.committed_major, report.committed_minor, report.committed_build)
        != (report.current_major, report.current_minor, report.current_build)
    ):
        raise PolicyError("COMMITTED_TCB", "provisional firmware: committed is not current")
    for name, expected, actual in (
        ("MEASUREMENT", policy.expected_measurement, report.measurement),
        ("REPORT_DATA", policy.expected_report_data, report.report_data),
        ("HOST_DATA", policy.expected_host_data, report.host_data),
    ):
        if expected is not None and not hmac.compare_digest(expected, actual):
            raise PolicyError(
                name, f"is {actual.hex()[:32]}…, not the expected {expected.hex()[:32]}…"
            )
