"""Reading what a run registered: the function's and the job definition's environments."""

from __future__ import annotations

import json

from .harness import Run

FUNCTION = "aws:lambda/function:Function"
DEFINITION = "aws:batch/jobDefinition:JobDefinition"
CE = "aws:batch/computeEnvironment:ComputeEnvironment"


def lambda_env(run: Run) -> dict[str, str]:
    """The fast-path function's environment variables."""
    return run.one(FUNCTION).inputs["environment"]["variables"]


def container(run: Run) -> dict:
    """The job definition's container properties."""
    return json.loads(run.one(DEFINITION).inputs["containerProperties"])


def job_env(run: Run) -> dict[str, str]:
    """The job definition's environment variables."""
    return {e["name"]: e["value"] for e in container(run)["environment"]}


def job_resources(run: Run) -> dict[str, str]:
    """The job definition's resource requirements: VCPU and MEMORY."""
    return {r["type"]: r["value"] for r in container(run)["resourceRequirements"]}


def normal_environment(run: Run):
    """The normal lane's compute environment (EC2 or Fargate)."""
    (found,) = [r for r in run.of_type(CE) if r.name in ("normal-compute", "normal-fargate")]
    return found


def compute(run: Run) -> dict:
    """The normal lane's compute resources."""
    return normal_environment(run).inputs["computeResources"]


def job_definition(run: Run) -> tuple[dict, dict]:
    """The job definition's inputs and its container properties."""
    definition = run.one(DEFINITION).inputs
    return definition, json.loads(definition["containerProperties"])
