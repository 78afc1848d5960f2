"""Issue 20 under mocks: the urgent lane, fair share, warm capacity and the deploy-time faults,
on both architectures and every capacity variant, and the safe path for turning each setting
on and off on an existing stack (what the engine does with the URNs, names and options the
program registers: same URN + same name = update in place; same URN + a new name = replacement,
create-before-delete unless deleteBeforeReplace)."""

from __future__ import annotations

import json

import pytest

from components import batch_array
from components.batch_array import definition_name, weight_factor

from .harness import ACCOUNT, Run, run_program
from .lookups import job_env, lambda_env

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

CE = "aws:batch/computeEnvironment:ComputeEnvironment"
QUEUE = "aws:batch/jobQueue:JobQueue"
POLICY = "aws:batch/schedulingPolicy:SchedulingPolicy"
DEFINITION = "aws:batch/jobDefinition:JobDefinition"
FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"

# (useFargate, useSpot, architecture): every capacity variant the settings accept.
VARIANTS = [
    (False, False, "x86_64"),
    (False, False, "arm64"),
    (False, True, "x86_64"),
    (False, True, "arm64"),
    (True, False, "x86_64"),
    (True, False, "arm64"),
    (True, True, "x86_64"),  # Fargate Spot + arm64 is refused (test_infra_config)
]


def variant(use_fargate: bool, use_spot: bool, architecture: str, **more) -> dict:
    return {"useFargate": use_fargate, "useSpot": use_spot, "architecture": architecture, **more}


def by_name(run: Run, type_: str) -> dict[str, object]:
    return {r.name: r for r in run.of_type(type_)}


def transition(before: Run, after: Run, logical: str) -> str:
    """What `pulumi up` from `before` to `after` does to one resource: created, deleted,
    updated (same URN, same physical name) or replaced (same URN, new physical name, which
    the provider can only create beside the old one when the name differs)."""
    old = [r for r in before.resources if r.name == logical]
    new = [r for r in after.resources if r.name == logical]
    if not old:
        return "created" if new else "absent"
    if not new:
        return "deleted"
    (o,), (n,) = old, new
    assert o.urn == n.urn
    key = "name" if "name" in n.inputs else "namePrefix"
    return "updated" if o.inputs.get(key) == n.inputs.get(key) else "replaced"


# --- the urgent lane --------------------------------------------------------------------------


@pytest.mark.parametrize(("use_fargate", "use_spot", "architecture"), VARIANTS)
def test_urgent_lane_off_has_no_queue_and_says_so(use_fargate, use_spot, architecture) -> None:
    run = run_program("eu-west-1", variant(use_fargate, use_spot, architecture, urgentMaxVcpus=0))
    assert [r.name for r in run.of_type(CE)] == [
        "normal-fargate" if use_fargate else "normal-compute"
    ]
    assert [q.name for q in run.of_type(QUEUE)] == ["normal-queue"]
    assert run.outputs["urgentJobQueueArn"] == ""
    # The runtime answers urgent/ uploads "the lane is off" from the empty variable.
    assert lambda_env(run)["URGENT_JOB_QUEUE"] == job_env(run)["URGENT_JOB_QUEUE"] == ""
    # urgent/ uploads still reach the function, so they end failed instead of silently.
    assert run.named("notifications-urgent-upload-rule")
    failed = json.loads(run.named("failures-batch-failed").inputs["eventPattern"])
    assert failed["detail"]["jobQueue"] == [run.outputs["jobQueueArn"]]


@pytest.mark.parametrize(("use_fargate", "use_spot", "architecture"), VARIANTS)
def test_urgent_lane_on_and_off_is_a_safe_update(use_fargate, use_spot, architecture) -> None:
    """On -> off -> on: the urgent queue and its environment are created and deleted on their
    own; the normal lane's queue and environment are untouched; the function and the job
    definition follow the queue's ARN (an update)."""
    on = run_program("eu-west-1", variant(use_fargate, use_spot, architecture, urgentMaxVcpus=8))
    off = run_program("eu-west-1", variant(use_fargate, use_spot, architecture, urgentMaxVcpus=0))
    urgent_ce = "normal-urgent-fargate" if use_fargate else "normal-urgent-compute"
    normal_ce = "normal-fargate" if use_fargate else "normal-compute"
    for before, after, expected in ((on, off, "deleted"), (off, on, "created")):
        assert transition(before, after, "normal-urgent-queue") == expected
        assert transition(before, after, urgent_ce) == expected
        assert transition(before, after, "normal-queue") == "updated"
        assert transition(before, after, normal_ce) == "updated"
        assert transition(before, after, "normal-definition") == "updated"
        assert transition(before, after, "fast-function") == "updated"
    assert on.named(urgent_ce).inputs["computeResources"]["maxVcpus"] == 8
    assert on.outputs["urgentJobQueueArn"] == on.named("normal-urgent-queue").state["arn"]
    assert lambda_env(on)["URGENT_JOB_QUEUE"] == on.outputs["urgentJobQueueArn"]


def test_urgent_lane_when_the_normal_lane_is_on_demand_too() -> None:
    """Decision (docs/deploy.md): the urgent lane keeps its own on-demand environment first
    (capacity the normal queue cannot take) and falls back to the normal lane's on-demand
    environment, where its priority puts urgent jobs first."""
    run = run_program("eu-west-1", {"useSpot": False})
    orders = run.named("normal-urgent-queue").inputs["computeEnvironmentOrders"]
    types = [
        next(r for r in run.of_type(CE) if r.state["arn"] == o["computeEnvironment"]).inputs[
            "computeResources"
        ]["type"]
        for o in orders
    ]
    assert types == ["EC2", "EC2"]


# --- fair share -------------------------------------------------------------------------------

SHARES = {"risk": 3, "fx": 1, "credit": 0.5}


@pytest.mark.parametrize(("use_fargate", "use_spot", "architecture"), VARIANTS)
def test_fair_share_policy_on_every_pricing_queue(use_fargate, use_spot, architecture) -> None:
    run = run_program("us-east-1", variant(use_fargate, use_spot, architecture, fairShare=SHARES))
    policy = run.one(POLICY)
    fair = policy.inputs["fairSharePolicy"]
    assert fair["shareDecaySeconds"] == 3600 and fair["computeReservation"] == 25
    factors = {d["shareIdentifier"]: d["weightFactor"] for d in fair["shareDistributions"]}
    # Bigger weight = more capacity = smaller weight factor; a default share for the rest.
    assert factors == {"risk": 0.3333, "fx": 1.0, "credit": 2.0, "default": 1.0}
    assert factors["risk"] < factors["fx"] < factors["credit"]
    for queue in run.of_type(QUEUE):
        assert queue.inputs["schedulingPolicyArn"] == policy.state["arn"], queue.name
        assert queue.inputs["name"].endswith("-fs"), queue.name
    # Every submission carries a listed team's identifier or "default".
    for env in (lambda_env(run), job_env(run)):
        assert sorted(env["FAIR_SHARE"].split(",")) == ["credit", "fx", "risk"]


def test_the_default_share_can_be_weighted() -> None:
    run = run_program("us-east-1", {"fairShare": {"risk": 4, "default": 2}})
    fair = run.one(POLICY).inputs["fairSharePolicy"]
    factors = {d["shareIdentifier"]: d["weightFactor"] for d in fair["shareDistributions"]}
    assert factors == {"default": 0.5, "risk": 0.25}
    assert lambda_env(run)["FAIR_SHARE"] == "risk"  # "default" is not a team


@pytest.mark.parametrize(("use_fargate", "use_spot", "architecture"), VARIANTS)
@pytest.mark.parametrize("stack", ["us-east-1", "eu-west-1"])
def test_fair_share_on_off_on_replaces_the_queues_safely(
    stack, use_fargate, use_spot, architecture
) -> None:
    """Batch can neither add a scheduling policy to a FIFO queue nor remove one: every switch
    must be a new queue. The queue's name carries the mode, so the same URN gets a new name
    (replacement), created before the old queue is deleted (no deleteBeforeReplace), and the
    function and the job definition name the new queue in the same update."""
    base = variant(use_fargate, use_spot, architecture)
    fifo = run_program(stack, base)
    fair = run_program(stack, {**base, "fairShare": SHARES})
    fifo_again = run_program(stack, {**base, "fairShare": {}})
    for before, after in ((fifo, fair), (fair, fifo_again)):
        for queue in ("normal-queue", "normal-urgent-queue"):
            assert transition(before, after, queue) == "replaced", queue
            assert not after.named(queue).options["deleteBeforeReplace"]
        for ce in after.of_type(CE):
            assert transition(before, after, ce.name) == "updated"
        assert transition(before, after, "fast-function") == "updated"
        assert lambda_env(after)["JOB_QUEUE"] == after.outputs["jobQueueArn"]
        assert job_env(after)["JOB_QUEUE"] == after.outputs["jobQueueArn"]
    assert transition(fifo, fair, "normal-fair-share") == "created"
    assert transition(fair, fifo_again, "normal-fair-share") == "deleted"
    # The queues that the policy's deletion waits for depend on it (deleted first).
    policy = fair.one(POLICY)
    for queue in fair.of_type(QUEUE):
        assert fair.depends_on(queue, policy)
    # Off again: exactly the FIFO names, so a stack that never turned it on never changed.
    assert {q.inputs["name"] for q in fifo_again.of_type(QUEUE)} == {
        q.inputs["name"] for q in fifo.of_type(QUEUE)
    }
    for queue in fifo_again.of_type(QUEUE):
        assert "schedulingPolicyArn" not in queue.inputs
    assert lambda_env(fifo_again)["FAIR_SHARE"] == ""


def test_changing_weights_updates_the_policy_in_place() -> None:
    one = run_program("us-east-1", {"fairShare": SHARES})
    two = run_program("us-east-1", {"fairShare": {**SHARES, "risk": 5, "rates": 2}})
    assert transition(one, two, "normal-fair-share") == "updated"
    assert transition(one, two, "normal-queue") == "updated"


def test_weight_factors_are_inverse_weights() -> None:
    assert weight_factor(1) == 1.0
    assert weight_factor(4) == 0.25
    assert weight_factor(10000) == 0.0001  # Batch's smallest factor
    assert weight_factor(0.01) == 100.0


# --- warm capacity ----------------------------------------------------------------------------


def triggers(run: Run) -> dict[str, str]:
    """What each trigger of the function names as its target."""
    notification = run.one("aws:s3/bucketNotification:BucketNotification").inputs
    found = {f"s3:{t['id']}": t["lambdaFunctionArn"] for t in notification["lambdaFunctions"]}
    for target in run.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        if ":lambda:" in target.inputs["arn"]:
            found[target.name] = target.inputs["arn"]
    for mapping in run.of_type(MAPPING):
        found[mapping.name] = mapping.inputs["functionName"]
    for schedule in run.of_type("aws:scheduler/schedule:Schedule"):
        found[schedule.name] = schedule.inputs["target"]["arn"]
    return found


SCHEDULE = {"name": "eod", "cron": "cron(30 17 ? * MON-FRI *)", "timezone": "America/New_York",
            "book": "eod.csv", "path": "normal"}  # fmt: skip


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_provisioned_concurrency_every_trigger_invokes_the_alias(architecture: str) -> None:
    run = run_program(
        "us-east-1",
        {"lambdaProvisionedConcurrency": 3, "schedules": [SCHEDULE], "architecture": architecture},
    )
    function = run.one(FUNCTION)
    assert function.inputs["publish"] is True
    alias = run.one("aws:lambda/alias:Alias")
    assert alias.inputs["name"] == "live"
    assert alias.inputs["functionVersion"] == function.state["version"]
    config = run.one("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")
    assert config.inputs == {
        "functionName": function.inputs["name"],
        "qualifier": "live",
        "provisionedConcurrentExecutions": 3,
    }
    alias_arn = alias.state["arn"]
    found = triggers(run)
    assert (
        len(found) == 8 + 3 + 1 + 3 + 1
    )  # S3 rules, upload rules, batch-failed, mappings, schedule
    assert set(found.values()) == {alias_arn}
    # Permissions and async settings belong to the alias.
    for permission in run.of_type("aws:lambda/permission:Permission"):
        assert permission.inputs["qualifier"] == "live", permission.name
    invoke_config = run.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    assert invoke_config.inputs["qualifier"] == "live"
    role = json.loads(run.named("schedules-scheduler-policy").inputs["policy"])
    assert role["Statement"][0]["Resource"] == [alias_arn]


def test_provisioned_concurrency_on_off_on_is_a_safe_update() -> None:
    """The notification is rewritten (same URN, same bucket), never deleted; each permission
    is replaced (a new qualifier) and the new one exists before the notification or rule
    names the new target; the alias appears and goes on its own."""
    off = run_program("us-east-1", {"schedules": [SCHEDULE]})
    on = run_program("us-east-1", {"lambdaProvisionedConcurrency": 2, "schedules": [SCHEDULE]})
    for before, after in ((off, on), (on, off)):
        assert transition(before, after, "notifications-input") == "updated"
        notification = after.named("notifications-input")
        permission = after.named("fast-s3-invoke")
        assert after.depends_on(notification, permission)
        assert before.named("fast-s3-invoke").urn == permission.urn
        assert before.named("fast-s3-invoke").inputs.get("qualifier") != permission.inputs.get(
            "qualifier"
        )  # a replacement: qualifier is part of a permission's identity
        assert not permission.options["deleteBeforeReplace"]
        for lane in ("normal", "urgent", "auto"):
            target = after.named(f"notifications-{lane}-upload-function")
            assert after.depends_on(target, after.named(f"notifications-{lane}-upload-invoke"))
        for mapping in after.of_type(MAPPING):
            assert transition(before, after, mapping.name) == "updated"
    assert transition(off, on, "fast-live") == "created"
    assert transition(on, off, "fast-live") == "deleted"
    function = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:mc-pricing-us-east-1-fast"
    assert set(triggers(off).values()) == {function}


@pytest.mark.parametrize(("use_spot", "architecture"), [(False, "x86_64"), (True, "arm64")])
def test_warm_ec2_floor_sits_where_urgent_work_starts(use_spot: bool, architecture: str) -> None:
    lane = run_program(
        "eu-west-1", {"minVcpus": 4, "useSpot": use_spot, "architecture": architecture}
    )
    assert lane.named("normal-urgent-compute").inputs["computeResources"]["minVcpus"] == 4
    assert lane.named("normal-compute").inputs["computeResources"]["minVcpus"] == 0
    no_lane = run_program("eu-west-1", {"minVcpus": 4, "urgentMaxVcpus": 0, "useSpot": use_spot})
    assert no_lane.named("normal-compute").inputs["computeResources"]["minVcpus"] == 4
    # On and off: an update of the environment (Batch scales to the new minimum).
    assert transition(run_program("eu-west-1", {}), lane, "normal-urgent-compute") == "updated"


# --- the deploy-time faults -----------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["x86_64"])
@pytest.mark.parametrize("stack", ["us-east-1", "eu-west-1"])
def test_fault_1_fargate_spot_toggle_replaces_the_environment(stack, architecture) -> None:
    on_demand = run_program(stack, variant(True, False, architecture))
    spot = run_program(stack, variant(True, True, architecture))
    assert transition(on_demand, spot, "normal-fargate") == "replaced"
    assert transition(spot, on_demand, "normal-fargate") == "replaced"
    assert not spot.named("normal-fargate").options["deleteBeforeReplace"]
    # The urgent lane's Fargate environment is on demand either way: untouched.
    assert transition(on_demand, spot, "normal-urgent-fargate") == "updated"
    # EC2 environments do update in place (an infrastructure update, docs/deploy.md).
    ec2 = run_program(stack, variant(False, False, architecture))
    ec2_spot = run_program(stack, variant(False, True, architecture))
    assert transition(ec2, ec2_spot, "normal-compute") == "updated"


def test_fault_2_a_replaced_job_definition_gets_a_new_name() -> None:
    """The provider replaces a definition whose evaluateOnExit changes, and its delete
    deregisters every ACTIVE revision of the name. The name carries a digest of those inputs:
    the replacement registers a new name beside the old one, and the delete touches only the
    old name. A container change (threshold, image) stays an update: a new revision."""
    base = run_program("eu-west-1", {})
    threshold = run_program("eu-west-1", {"threshold": 50})
    assert transition(base, threshold, "normal-definition") == "updated"
    longer = run_program("eu-west-1", {"jobTimeoutSeconds": 7200})
    assert transition(base, longer, "normal-definition") == "replaced"
    assert not longer.named("normal-definition").options["deleteBeforeReplace"]
    inputs = {
        "type": "container",
        "retry_strategy": {
            "attempts": 3,
            "evaluate_on_exits": [{"action": "EXIT", "on_reason": "*"}],
        },
    }
    other = {**inputs, "retry_strategy": {**inputs["retry_strategy"], "evaluate_on_exits": []}}
    assert definition_name("p", inputs) != definition_name("p", other)
    assert definition_name("p", inputs) == definition_name("p", dict(reversed(inputs.items())))
    # Everything that names the definition follows it in the same update.
    name = longer.named("normal-definition").inputs["name"]
    assert lambda_env(longer)["JOB_DEFINITION"] == job_env(longer)["JOB_DEFINITION"] == name
    assert f"job-definition/{name}:*" in longer.named("fast-policy").inputs["policy"]
    assert f"job-definition/{name}:*" in longer.named("normal-job-policy").inputs["policy"]


def test_fault_2_the_digest_covers_the_retry_strategy_the_program_registers() -> None:
    run = run_program("eu-west-1", {})
    definition = run.named("normal-definition").inputs
    evaluate = definition["retryStrategy"]["evaluateOnExits"]
    assert {"action": "RETRY", "onStatusReason": "Host EC2*"} in evaluate
    assert definition["name"] == definition_name(
        "mc-pricing-eu-west-1",
        {
            "type": "container",
            "platform_capabilities": ["EC2"],
            "retry_strategy": {
                "attempts": 3,
                "evaluate_on_exits": [
                    *(
                        {"action": "RETRY", "on_status_reason": r}
                        for r in batch_array.RETRY_STATUS_REASONS
                    ),
                    {"action": "EXIT", "on_reason": "*"},
                ],
            },
            "timeout": {"attempt_duration_seconds": 3600},
            "propagate_tags": True,
        },
    )


@pytest.mark.parametrize(
    ("reserved", "schedules", "each"),
    [(-1, [], 5), (-1, [SCHEDULE], 5), (4, [], 2), (6, [SCHEDULE], 2), (7, [SCHEDULE], 2),
     (9, [SCHEDULE], 3), (10, [], 5), (100, [SCHEDULE], 5)],
)  # fmt: skip
def test_fault_4_failure_mappings_fit_in_reserved_concurrency(reserved, schedules, each) -> None:
    run = run_program("us-east-1", {"lambdaReservedConcurrency": reserved, "schedules": schedules})
    mappings = run.of_type(MAPPING)
    assert len(mappings) == (3 if schedules else 2)
    limits = [m.inputs["scalingConfig"]["maximumConcurrency"] for m in mappings]
    assert limits == [each] * len(mappings)
    if reserved >= 0:
        assert sum(limits) <= reserved


def test_fault_4_reserved_zero_disables_and_small_reservations_are_refused() -> None:
    run = run_program("us-east-1", {"lambdaReservedConcurrency": 0})
    assert all("scalingConfig" not in m.inputs for m in run.of_type(MAPPING))
    for reserved, schedules, needed in ((1, [], 4), (3, [], 4), (5, [SCHEDULE], 6)):
        with pytest.raises(ValueError, match=f"use -1, 0 \\(disabled\\) or at least {needed}"):
            run_program(
                "us-east-1", {"lambdaReservedConcurrency": reserved, "schedules": schedules}
            )
