"""How the program is built, for both stack files: one of each component, every resource a
child of one, components complete in their constructors, and resources that moved between
components keep their deployed identity (aliases)."""

from __future__ import annotations

import itertools

import pytest

from .harness import ROOT, Run

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

COMPONENTS = [
    "mc-pricing:components:PricingImage",
    "mc-pricing:components:PricingBuckets",
    "mc-pricing:components:FastLambdaPath",
    "mc-pricing:components:InputNotifications",
    "mc-pricing:components:BatchArrayPath",
    "mc-pricing:components:FailureRouting",
    "mc-pricing:components:PricingMonitoring",
]

# The two halves of the former PricingOperations.
OPERATIONS = ("mc-pricing:components:FailureRouting", "mc-pricing:components:PricingMonitoring")


def test_exactly_one_of_each_component(run: Run) -> None:
    for component in COMPONENTS:
        run.one(component)
    for resource in run.resources:
        if not resource.custom:
            assert resource.type.startswith("mc-pricing:components:"), resource.type


def test_every_resource_is_a_child_of_a_component(run: Run) -> None:
    for resource in run.resources:
        if resource.custom:
            parent_chain = resource.urn.split("::")[2]
            assert parent_chain.startswith("mc-pricing:components:"), resource.urn


def test_moved_and_renamed_bucket_resources_keep_their_deployed_identity(run: Run) -> None:
    """A deployed stack must keep its notification and bucket policies: without aliases,
    Pulumi would create new ones and then delete the old ones, and deleting either empties the
    bucket's configuration (S3 keeps one of each per bucket)."""
    buckets = run.one("mc-pricing:components:PricingBuckets").urn
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    assert {"name": "buckets-input-notification", "parentUrn": buckets} in notification.aliases
    for bucket in ("input", "result"):
        policy = run.named(f"buckets-{bucket}-policy")
        assert [a["name"] for a in policy.aliases] == [f"buckets-{bucket}-tls-only"]


def test_moved_upload_rule_and_dead_letter_queue_keep_their_deployed_identity(run: Run) -> None:
    """The normal lane's upload rule, its dead-letter queue and the queue's policy moved from
    BatchArrayPath to InputNotifications. A queue of the same name created anew would be the
    same queue, which the old resource's deletion would then delete; a new queue policy would
    be removed by the old one's deletion. The aliases make them the same resources."""
    batch = run.one("mc-pricing:components:BatchArrayPath").urn
    for new, old in (
        ("notifications-normal-upload-rule", "normal-upload-rule"),
        ("notifications-upload-failures", "normal-failures"),
        ("notifications-upload-failures-policy", "normal-failures-policy"),
    ):
        assert {"name": old, "parentUrn": batch} in run.named(new).aliases, new
    # The physical names stay what they were.
    assert run.named("notifications-upload-failures").inputs["name"].endswith("-normal-failures")
    assert run.named("notifications-normal-upload-rule").inputs["name"].endswith("-normal-upload")


def test_components_gain_no_children_after_construction() -> None:
    """PricingBuckets no longer creates the notification later: nothing to call after it."""
    from components.buckets import PricingBuckets

    assert not hasattr(PricingBuckets, "notify_lambda")


def test_bucket_configuration_is_applied_one_step_at_a_time(run: Run) -> None:
    """Concurrent configuration calls on one bucket can fail with OperationAborted."""
    steps = ["public-access", "ownership", "encryption", "policy", "versioning", "lifecycle"]
    for bucket in ("input", "result"):
        chain = [f"buckets-{bucket}"] + [f"buckets-{bucket}-{step}" for step in steps]
        if bucket == "input":
            chain.append("notifications-input")
        for earlier, later in itertools.pairwise(chain):
            assert run.depends_on(run.named(later), run.named(earlier)), (later, earlier)


def test_infrastructure_code_never_imports_the_runtime() -> None:
    import ast

    for path in [ROOT / "__main__.py", *sorted((ROOT / "components").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] == "runtime" for m in modules), path


def test_components_own_their_resources(emailed: Run) -> None:
    run = emailed
    for component, prefix_ in zip(OPERATIONS, ("failures-", "monitoring-"), strict=True):
        assert run.one(component).urn
        mine = [r for r in run.resources if r.name.startswith(prefix_)]
        assert mine
        for resource in mine:
            assert resource.custom and resource.urn.split("::")[2].endswith(
                f"{component}${resource.type}"
            ), resource.name
    assert len([r for r in run.resources if r.name.startswith(("failures-", "monitoring-"))]) > 40
    assert {"dashboardName", "alarmTopicArn"} <= set(run.outputs)
    assert not run.of_type("mc-pricing:components:PricingOperations")


def test_split_resources_keep_their_deployed_identity(emailed: Run) -> None:
    """Every resource of the former PricingOperations ("ops") is aliased to its name under it,
    so a deployed stack keeps them (a renamed queue, rule or policy would be created anew and the
    old one deleted: the parked queue with its messages, the alarms, the dashboard)."""
    run = emailed
    ops_urn = run.one(OPERATIONS[0]).urn.replace(
        "mc-pricing:components:FailureRouting::failures",
        "mc-pricing:components:PricingOperations::ops",
    )
    split = [
        r for r in run.resources if r.name.startswith(("failures-", "monitoring-")) and r.custom
    ]
    new_ones = {"failures-schedule-redrive", "failures-schedule-failures-mapping"}
    for resource in split:
        if resource.name in new_ones:
            continue
        key = resource.name.split("-", 1)[1]
        assert resource.aliases == [{"name": f"ops-{key}", "parentUrn": ops_urn}], resource.name


def test_component_helpers_set_nothing_and_read_only_fixed_context() -> None:
    """A component is complete when its constructor returns, whatever order its helpers run
    in: a helper method never assigns an attribute of the component, and reads only the
    private context the constructor fixes before any helper runs (self._name, self._args...)
    and other methods; what a helper builds it returns, and the constructor wires it."""
    import ast

    for path in sorted((ROOT / "components").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
            if not any(ast.unparse(base).endswith("ComponentResource") for base in cls.bases):
                continue
            methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
            for method in [n for n in cls.body if isinstance(n, ast.FunctionDef)]:
                if method.name == "__init__":
                    continue
                for node in ast.walk(method):
                    if not (
                        isinstance(node, ast.Attribute)
                        and isinstance(node.value, ast.Name)
                        and node.value.id == "self"
                    ):
                        continue
                    where = f"{path.name}: {cls.name}.{method.name} uses self.{node.attr}"
                    assert isinstance(node.ctx, ast.Load), where
                    assert node.attr.startswith("_") or node.attr in methods, where
