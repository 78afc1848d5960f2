"""Stack settings from the Pulumi files, read without a YAML library, as one reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime.planning.settings import PlanSettings, SettingsError
from runtime.planning.stackfile import (
    StackFileError,
    project_defaults,
    read_stack,
    stack_values,
)

ROOT = Path(__file__).resolve().parents[2]


def test_pulumi_yaml_defaults_read_as_a_yaml_library_reads_them():
    name, defaults = project_defaults((ROOT / "Pulumi.yaml").read_text())
    schema = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert name == schema["name"]
    assert defaults == {key: spec["default"] for key, spec in schema["config"].items()}


@pytest.mark.parametrize("stack", ["us-east-1", "eu-west-1"])
def test_stack_files_read_as_a_yaml_library_reads_their_settings(stack):
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    expected = yaml.safe_load(text)["config"]
    found = stack_values(text)
    scalars = {k: v for k, v in expected.items() if not isinstance(v, dict)}
    assert {k: found[k] for k in scalars} == scalars


def test_the_plans_defaults_are_the_stacks_defaults():
    _, defaults = project_defaults((ROOT / "Pulumi.yaml").read_text())
    assert PlanSettings() == PlanSettings().with_values(defaults)


def test_a_stack_is_its_file_over_the_defaults(tmp_path):
    settings, note = read_stack(ROOT, "us-east-1")
    plan = PlanSettings().with_values(settings)
    assert (plan.use_spot, plan.max_vcpus, plan.region) == (True, 256, "us-east-1")
    assert "Pulumi.us-east-1.yaml" in note
    with pytest.raises(StackFileError, match=r"no stack file Pulumi.nope.yaml .*us-east-1"):
        read_stack(ROOT, "nope")
    # the image has no Pulumi files: no settings, and a note that says so
    settings, note = read_stack(tmp_path, "us-east-1")
    assert settings == {} and "no Pulumi.yaml" in note


def test_an_object_setting_and_nested_values_are_read(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: mc-pricing\nconfig:\n  engine:\n    default: lsm\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  aws:region: eu-west-1  # Ireland\n  mc-pricing:priceTable:\n"
        "    ec2SpotDiscount: 0.5\n  mc-pricing:maxJobUsd: '2.5'\n"
    )
    settings, _ = read_stack(tmp_path, "dev")
    plan = PlanSettings().with_values(settings)
    assert plan.region == "eu-west-1" and plan.max_job_usd == 2.5
    assert plan.price_table == '{"ec2SpotDiscount": 0.5}'


def test_a_setting_of_the_wrong_kind_is_refused_naming_it():
    with pytest.raises(SettingsError, match="threshold: 'many' is not a valid int"):
        PlanSettings().with_values({"threshold": "many"})
    with pytest.raises(SettingsError, match="threshold must be at least 1"):
        PlanSettings().with_values({"threshold": 0})
    with pytest.raises(SettingsError, match="engine 'fast'"):
        PlanSettings().with_values({"engine": "fast"})


def test_the_stack_passes_its_planning_settings_as_one_json_variable():
    from runtime.planning.settings import plan_settings_from_json

    settings = plan_settings_from_json('{"maxVcpus": 256, "useSpot": true, "maxJobUsd": 1.5}')
    assert (settings.max_vcpus, settings.use_spot, settings.max_job_usd) == (256, True, 1.5)
    assert plan_settings_from_json("") == PlanSettings()
    with pytest.raises(SettingsError, match="unknown setting"):
        plan_settings_from_json('{"vpcId": "v"}')
    with pytest.raises(SettingsError, match="not JSON"):
        plan_settings_from_json("{")
