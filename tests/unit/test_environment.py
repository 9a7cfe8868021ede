"""The HOOKRUN_ENV hand-off parser."""

from orchestrator.environment import parse_handoff


def test_name_value_lines_are_handed_on_and_values_may_hold_equals_signs():
    values, warnings = parse_handoff(b"RESTIC_REPOSITORY=/mnt/usb-2/restic\nA_1=x=y\n\nEMPTY=\n")
    assert values == {"RESTIC_REPOSITORY": "/mnt/usb-2/restic", "A_1": "x=y", "EMPTY": ""}
    assert warnings == []


def test_hookrun_names_and_malformed_lines_are_warnings_and_ignored():
    values, warnings = parse_handoff(b"HOOKRUN_EVENT=x\n1BAD=x\nno equals\n=x\nGOOD=1\n")
    assert values == {"GOOD": "1"}
    assert len(warnings) == 4
    assert "HOOKRUN_" in warnings[0]


def test_undecodable_bytes_survive_the_hand_off():
    values, _ = parse_handoff(b"P=\xff\xfe\n")
    assert values["P"].encode("utf-8", "surrogateescape") == b"\xff\xfe"
