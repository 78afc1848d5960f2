"""Run the Pulumi program under mocks for a stack file, and record what it registers.

This is Pulumi's documented unit-testing approach (pulumi.runtime.set_mocks), extended to run
__main__.py several times in one process: each run resets the root stack resource, replaces
the whole config map, installs fresh mocks and executes __main__.py with runpy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import MockMonitor

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # __main__.py imports components/ from the project root
    sys.path.insert(0, str(ROOT))

PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
PROJECT_NAME: str = PROJECT["name"]
STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
ACCOUNT = "123456789012"


def config_value(value: Any) -> str:
    """Pulumi hands config to the program as strings; objects and arrays as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def stack_config(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """What the CLI would pass: Pulumi.yaml defaults, then the stack file, then overrides."""
    config = {
        f"{PROJECT_NAME}:{key}": config_value(schema["default"])
        for key, schema in PROJECT["config"].items()
        if "default" in schema
    }
    stack_file = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    for key, value in stack_file["config"].items():
        config[key] = config_value(value)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT_NAME}:{key}"
        config[full] = config_value(value)
    return config


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    state: dict[str, Any] = field(default_factory=dict)  # what the mock returned as outputs
    urn: str = ""
    dependencies: list[str] = field(default_factory=list)  # URNs, explicit and from inputs
    aliases: list[dict[str, str]] = field(default_factory=list)  # {"urn"} or {"name", "parentUrn"}
    # Resource options the engine acts on when a change replaces the resource.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    stack: str
    region: str
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registered:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registered:
        (found,) = [r for r in self.resources if r.name == name]
        return found

    def depends_on(self, resource: Registered, other: Registered) -> bool:
        return other.urn in resource.dependencies


class RecordingMocks(pulumi.runtime.Mocks):
    """Returns plausible ids/ARNs/outputs and records every registration."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.run.region}:{ACCOUNT}:{resource}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        inputs = dict(args.inputs)
        name = inputs.get("name") or args.name
        out: dict[str, Any] = dict(inputs)
        rid = f"{args.name}-id"
        t = args.typ
        if t == "aws:s3/bucket:Bucket":
            rid = out["bucket"] = inputs["bucketPrefix"] + "20240101abcdef"
            out["arn"] = f"arn:aws:s3:::{rid}"
        elif t == "aws:lambda/function:Function":
            out["arn"] = self._arn("lambda", f"function:{name}")
            out["version"] = "7" if inputs.get("publish") else "$LATEST"
        elif t == "aws:lambda/alias:Alias":
            out["arn"] = self._arn("lambda", f"function:{inputs['functionName']}:{name}")
        elif t == "aws:batch/schedulingPolicy:SchedulingPolicy":
            out["arn"] = self._arn("batch", f"scheduling-policy/{name}")
        elif t == "aws:scheduler/scheduleGroup:ScheduleGroup":
            out["arn"] = self._arn("scheduler", f"schedule-group/{name}")
        elif t == "aws:scheduler/schedule:Schedule":
            group = inputs.get("groupName", "default")
            out["arn"] = self._arn("scheduler", f"schedule/{group}/{name}")
        elif t == "aws:sqs/queue:Queue":
            out["arn"] = self._arn("sqs", name)
            rid = out["url"] = f"https://sqs.{self.run.region}.amazonaws.com/{ACCOUNT}/{name}"
        elif t == "aws:iam/role:Role":
            rid, out["arn"] = name, f"arn:aws:iam::{ACCOUNT}:role/{name}"
        elif t == "aws:iam/instanceProfile:InstanceProfile":
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}"
        elif t == "aws:batch/computeEnvironment:ComputeEnvironment":
            out["name"] = inputs.get("namePrefix", "") + "20240101000000000000000001"
            out["arn"] = self._arn("batch", f"compute-environment/{out['name']}")
        elif t == "aws:batch/jobQueue:JobQueue":
            out["arn"] = self._arn("batch", f"job-queue/{name}")
        elif t == "aws:batch/jobDefinition:JobDefinition":
            out["arn"] = self._arn("batch", f"job-definition/{name}:1")
            out["arnPrefix"] = self._arn("batch", f"job-definition/{name}")
            out["revision"] = 1
        elif t == "aws:cloudwatch/eventRule:EventRule":
            out["arn"] = self._arn("events", f"rule/{name}")
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            out["arn"] = self._arn("logs", f"log-group:{name}")
        elif t == "aws:ecr/repository:Repository":
            out["registryId"] = ACCOUNT
            out["arn"] = self._arn("ecr", f"repository/{name}")
            out["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{self.run.region}.amazonaws.com/{name}"
        elif t == "docker:index/image:Image":
            repo = inputs["imageName"].rsplit(":", 1)[0]
            digest = hashlib.sha256(inputs["imageName"].encode()).hexdigest()
            out["repoDigest"] = f"{repo}@sha256:{digest}"
            out["platform"] = (inputs.get("build") or {}).get("platform")
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            rid = "sg-0123456789abcdef0"
        self.run.resources.append(Registered(t, args.name, inputs, bool(args.custom), out))
        return rid, out

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        token, region = args.token, self.run.region
        self.run.calls.append((token, dict(args.args)))
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "userId": "AIDEXAMPLE",
                "id": ACCOUNT,
            }
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": "aws",
            }
        if token == "aws:index/getRegion:getRegion":
            return {"region": region, "name": region, "id": region}
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOm1vY2s=",
                "userName": "AWS",
                "password": "mock-password",
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{region}.amazonaws.com",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": region,
            }
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": "vpc-default0", "default": True, "cidrBlock": "172.31.0.0/16"}
        if token == "aws:ec2/getSubnets:getSubnets":
            return {"ids": ["subnet-default-a", "subnet-default-b"], "id": region}
        raise NotImplementedError(f"unmocked invoke {token}")


class RecordingMonitor(MockMonitor):
    """Adds each registration's URN and dependency URNs, which Mocks.new_resource can't see."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.run = mocks.run

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        for registered in self.run.of_type(request.type):  # registrations run on threads
            if registered.name == request.name:
                registered.urn = response.urn
                registered.dependencies = list(request.dependencies)
                registered.aliases = [_alias(a) for a in request.aliases]
                timeouts = request.customTimeouts
                registered.options = {
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "retainOnDelete": request.retainOnDelete,
                    "customTimeouts": {
                        k: getattr(timeouts, k) for k in ("create", "update", "delete")
                    }
                    if timeouts
                    else {},
                }
        return response


def _alias(alias: Any) -> dict[str, str]:
    if alias.urn:
        return {"urn": alias.urn}
    spec = alias.spec
    return {"name": spec.name, "parentUrn": spec.parentUrn}


def run_program(
    stack: str,
    overrides: dict[str, Any] | None = None,
    *,
    config: dict[str, str] | None = None,
    stack_name: str | None = None,
    program: Callable[[], None] | None = None,
) -> Run:
    """Execute __main__.py (or `program`) with the config of stack file `stack` plus overrides
    (or exactly `config` when given), as stack `stack_name` (default: `stack`); return what it
    registered."""
    config = stack_config(stack, overrides) if config is None else config
    name = stack_name or stack
    run = Run(stack=name, region=config["aws:region"])

    pulumi_settings.ROOT.set(None)  # set_mocks only creates a new root Stack when none is set
    pulumi.runtime.set_all_config(config)
    monitor = RecordingMonitor(RecordingMocks(run))
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT_NAME, stack=name, preview=False, monitor=monitor
    )

    def main() -> pulumi.Output:
        if program is None:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        else:
            program()
        stack_resource = pulumi_settings.get_root_resource()
        return pulumi.Output.from_input(stack_resource.outputs).apply(run.outputs.update)

    pulumi.runtime.test(main)()
    return run


@functools.cache
def run_stack(stack: str, overrides: tuple[tuple[str, Any], ...] = ()) -> Run:
    """Cached run: each distinct (stack, overrides) is executed once per test session."""
    return run_program(stack, dict(overrides))
