"""Policy on authentic reports: each rule, on the real vectors and crafted fields."""

from __future__ import annotations

import attrs
import pytest

from saferouter.errors import PolicyError
from saferouter.tee import abi
from saferouter.tee.abi import Product, Tcb
from saferouter.tee.demo import DEMO_TCB, ChainKeys
from saferouter.tee.validate import Policy, validate_report

from .synthetic import demo_report
from .vectors import SETS

BY_NAME = {s.name: s for s in SETS}


def report(name: str) -> abi.Report:
    return abi.parse_report(BY_NAME[name].report_bytes())


def test_debug_report_verifies_but_fails_policy(testdata: object) -> None:
    debug = report("milan-v2-gosevguest")
    with pytest.raises(PolicyError) as raised:
        validate_report(debug, Product.MILAN, Policy())
    assert raised.value.field == "POLICY.DEBUG"
    validate_report(debug, Product.MILAN, Policy(allow_debug=True))


@pytest.mark.parametrize(
    "name",
    ["milan-v2-virtee", "milan-v3-oak", "genoa-v3-azure-trustee", "genoa-v5-oak", "turin-v5-oak"],
)
def test_production_reports_pass_the_default_policy(testdata: object, name: str) -> None:
    validate_report(report(name), BY_NAME[name].product, Policy())


def test_real_facts_the_policy_sees(testdata: object) -> None:
    # the AWS VLEK report runs at VMPL 1 and on provisional firmware
    vlek = report("milan-v3-vlek-trustee")
    with pytest.raises(PolicyError, match="VMPL"):
        validate_report(vlek, Product.MILAN, Policy())
    with pytest.raises(PolicyError, match="COMMITTED_TCB"):
        validate_report(vlek, Product.MILAN, Policy(vmpl=1))
    validate_report(vlek, Product.MILAN, Policy(vmpl=1, allow_provisional_firmware=True))


# (fields changed on an authentic report, the policy, the field it must fail on)
RULES = [
    (
        {"policy": abi.POLICY_RESERVED_ONE | abi.POLICY_MIGRATE_MA},
        Policy(),
        "POLICY.MIGRATE_MA",
    ),
    (
        {"policy": abi.POLICY_RESERVED_ONE | abi.POLICY_SMT},
        Policy(allow_smt=False),
        "POLICY.SMT",
    ),
    ({"platform_info": abi.PLATFORM_SMT_EN}, Policy(allow_smt=False), "POLICY.SMT"),
    ({}, Policy(require_single_socket=True), "POLICY.SINGLE_SOCKET"),
    ({}, Policy(minimum_abi=(1, 55)), "POLICY.ABI"),
    ({}, Policy(minimum_tcb=Tcb(bootloader=10, tee=0, snp=26, microcode=84)), "REPORTED_TCB"),
    (
        {"reported_tcb": abi.encode_tcb(Tcb(bootloader=10, tee=0, snp=30, microcode=90))},
        Policy(minimum_tcb=Tcb(bootloader=10, tee=0, snp=26, microcode=84)),
        "LAUNCH_TCB",
    ),
    ({"committed_build": 1}, Policy(), "COMMITTED_TCB"),
    ({}, Policy(expected_measurement=bytes(48)), "MEASUREMENT"),
    ({}, Policy(expected_report_data=b"\x01" * 64), "REPORT_DATA"),
    ({}, Policy(expected_host_data=b"\x02" * 32), "HOST_DATA"),
]


@pytest.mark.parametrize(("changes", "policy", "field"), RULES)
def test_each_rule_names_its_field(
    testdata: object, changes: dict[str, object], policy: Policy, field: str
) -> None:
    genoa = attrs.evolve(report("genoa-v5-oak"), **changes)
    with pytest.raises(PolicyError) as raised:
        validate_report(genoa, Product.GENOA, policy)
    assert raised.value.field == field


@pytest.mark.parametrize(("changes", "policy", "field"), RULES)
def test_each_rule_names_its_field_on_a_demo_report(
    demo: ChainKeys, changes: dict[str, object], policy: Policy, field: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        validate_report(demo_report(demo, **changes), Product.GENOA, policy)
    assert raised.value.field == field


def test_the_policy_on_crafted_reports(demo: ChainKeys) -> None:
    report = demo_report(demo)
    validate_report(report, Product.GENOA, Policy())  # SMT on, as the demo machine runs
    expected = Policy(
        expected_measurement=report.measurement,
        expected_report_data=report.report_data,
        expected_host_data=report.host_data,
        minimum_abi=(0, 0),
        minimum_tcb=DEMO_TCB,
        require_single_socket=True,
        allow_smt=False,
    )
    lean = attrs.evolve(
        report,
        policy=abi.POLICY_RESERVED_ONE | abi.POLICY_SINGLE_SOCKET,
        platform_info=0,
    )
    validate_report(lean, Product.GENOA, expected)
    debug = attrs.evolve(report, policy=report.policy | abi.POLICY_DEBUG)
    with pytest.raises(PolicyError, match=r"POLICY\.DEBUG"):
        validate_report(debug, Product.GENOA, Policy())
    validate_report(debug, Product.GENOA, Policy(allow_debug=True))
    at_vmpl_1 = attrs.evolve(report, vmpl=1)
    with pytest.raises(PolicyError, match="VMPL 1, not 0"):
        validate_report(at_vmpl_1, Product.GENOA, Policy())
    validate_report(at_vmpl_1, Product.GENOA, Policy(vmpl=None))
    provisional = attrs.evolve(report, committed_tcb=0)
    with pytest.raises(PolicyError, match="COMMITTED_TCB"):
        validate_report(provisional, Product.GENOA, Policy())
    validate_report(provisional, Product.GENOA, Policy(allow_provisional_firmware=True))


def test_expected_values_that_match_pass(testdata: object) -> None:
    genoa = report("genoa-v5-oak")
    validate_report(
        genoa,
        Product.GENOA,
        Policy(
            expected_measurement=genoa.measurement,
            expected_report_data=genoa.report_data,
            expected_host_data=genoa.host_data,
            minimum_abi=(0, 0),
            minimum_tcb=Tcb(bootloader=10, tee=0, snp=25, microcode=84),
            require_single_socket=False,
        ),
    )
