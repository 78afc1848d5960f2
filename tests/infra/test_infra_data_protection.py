"""Data protection, checked on everything each stack registers: private, encrypted,
versioned buckets with their lifecycle, what `pulumi destroy` may delete (forceDestroy),
encrypted queues, the image repository and how the image is pushed."""

from __future__ import annotations

import json

import pytest

from .harness import ACCOUNT, STACKS, Run, run_stack

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")


def test_buckets_are_private_encrypted_owner_enforced_tls_only(run: Run) -> None:
    buckets = run.of_type("aws:s3/bucket:Bucket")
    assert len(buckets) == 2
    for bucket in buckets:
        name = bucket.state["bucket"]

        def configured(type_: str, name: str = name) -> dict:
            (found,) = [r.inputs for r in run.of_type(type_) if r.inputs["bucket"] == name]
            return found

        assert not bucket.inputs.get("forceDestroy")
        encryption = configured(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        assert (
            encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        )
        access = configured("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert access[flag] is True, flag
        ownership = configured("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
        assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
        policy = json.loads(configured("aws:s3/bucketPolicy:BucketPolicy")["policy"])
        (deny,) = [s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport"]
        assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == ["s3:*"]
        assert deny["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("stack", STACKS)
def test_force_destroy_is_off_by_default_and_on_with_the_setting(stack: str) -> None:
    """forceDestroy lets `pulumi destroy` delete both buckets and the image repository with
    what they hold; by default it stops at data."""
    for overrides, forced in (((), False), ((("forceDestroy", False),), False)):
        run = run_stack(stack, overrides)
        buckets = run.of_type("aws:s3/bucket:Bucket")
        assert len(buckets) == 2
        assert [b.inputs["forceDestroy"] for b in buckets] == [forced, forced]
        assert run.one("aws:ecr/repository:Repository").inputs["forceDelete"] is forced
    run = run_stack(stack, (("forceDestroy", True),))
    buckets = run.of_type("aws:s3/bucket:Bucket")
    assert sorted(b.name for b in buckets) == ["buckets-input", "buckets-result"]
    assert [b.inputs["forceDestroy"] for b in buckets] == [True, True]
    assert run.one("aws:ecr/repository:Repository").inputs["forceDelete"] is True


def test_bucket_policies_go_before_their_buckets_on_destroy(run: Run) -> None:
    """The input bucket's policy denies s3:DeleteObjectVersion under fast/_parts/ to all but
    the fast path's role, and forceDestroy empties a bucket with exactly that action as the
    deployer. Pulumi deletes a resource's dependents first, so the policy (a dependent of its
    bucket) is gone before the bucket is emptied."""
    for bucket in run.of_type("aws:s3/bucket:Bucket"):
        name = bucket.state["bucket"]
        (policy,) = [
            r for r in run.of_type("aws:s3/bucketPolicy:BucketPolicy") if r.inputs["bucket"] == name
        ]
        assert run.depends_on(policy, bucket), bucket.name
    inp = run.named("buckets-input").state["bucket"]
    (policy,) = [
        json.loads(r.inputs["policy"])
        for r in run.of_type("aws:s3/bucketPolicy:BucketPolicy")
        if r.inputs["bucket"] == inp
    ]
    (parts,) = [s for s in policy["Statement"] if s["Sid"] == "ReservePartsForTheFastPath"]
    assert "s3:DeleteObjectVersion" in parts["Action"]


def test_bucket_versioning_and_lifecycle(run: Run) -> None:
    inp, res = (run.named(n).state["bucket"] for n in ("buckets-input", "buckets-result"))
    versioned = {
        v.inputs["bucket"]: v.inputs["versioningConfiguration"]["status"]
        for v in run.of_type("aws:s3/bucketVersioning:BucketVersioning")
    }
    # The result bucket too: the protocol deletes exactly the version it wrote.
    assert versioned == {inp: "Enabled", res: "Enabled"}

    def rules(bucket: str) -> list[dict]:
        (config,) = [
            r.inputs
            for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
            if r.inputs["bucket"] == bucket
        ]
        assert all(rule["status"] == "Enabled" for rule in config["rules"])
        # Every rule names its filter; "whole bucket" is the explicit empty prefix.
        assert all(set(rule["filter"]) == {"prefix"} for rule in config["rules"])
        return config["rules"]

    def expiring(bucket: str) -> dict[str, dict]:
        """prefix -> expiration, for rules that delete current objects after some days."""
        return {
            r["filter"]["prefix"]: r["expiration"]
            for r in rules(bucket)
            if "days" in r.get("expiration", {})
        }

    def whole_bucket(bucket: str, action: str) -> dict:
        (rule,) = [r for r in rules(bucket) if action in r]
        assert rule["filter"] == {"prefix": ""}
        return rule[action]

    # Only the temporary prefixes expire: never a user's upload or a current final result.
    assert expiring(inp) == {"fast/_parts/": {"days": 7}}
    assert expiring(res) == {
        f"{p}/_work/": {"days": 7} for p in ("fast", "normal", "urgent", "auto")
    }

    def noncurrent(bucket: str) -> dict[str, dict]:
        return {
            r["filter"]["prefix"]: r["noncurrentVersionExpiration"]
            for r in rules(bucket)
            if "noncurrentVersionExpiration" in r
        }

    # Fault 5: deleted parts are noncurrent versions; they go after a day, uploads after 30.
    assert noncurrent(inp) == {"": {"noncurrentDays": 30}, "fast/_parts/": {"noncurrentDays": 1}}
    assert noncurrent(res) == {"": {"noncurrentDays": 7}}
    for bucket in (inp, res):
        abort = whole_bucket(bucket, "abortIncompleteMultipartUpload")
        assert abort == {"daysAfterInitiation": 1}
        (markers,) = [
            r for r in rules(bucket) if "expiredObjectDeleteMarker" in r.get("expiration", {})
        ]
        assert markers["filter"] == {"prefix": ""}
        assert markers["expiration"] == {"expiredObjectDeleteMarker": True}


def test_queues_are_encrypted(run: Run) -> None:
    queues = run.of_type("aws:sqs/queue:Queue")
    for queue in queues:
        assert queue.inputs["sqsManagedSseEnabled"] is True, queue.name
    timeout = run.one("aws:lambda/function:Function").inputs["timeout"]
    for queue in (run.named("fast-failures"), run.named("notifications-upload-failures")):
        assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600, queue.name
        # Consumed by the Lambda: AWS requires visibility >= the function timeout (6x advised).
        assert queue.inputs["visibilityTimeoutSeconds"] == min(43200, 6 * timeout), queue.name


def test_ecr_repository(run: Run) -> None:
    repo = run.one("aws:ecr/repository:Repository").inputs
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    lifecycle = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
    (rule,) = lifecycle["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == 10
    assert rule["action"] == {"type": "expire"}
    pull = json.loads(run.one("aws:ecr/repositoryPolicy:RepositoryPolicy").inputs["policy"])
    (statement,) = pull["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Condition"]["StringLike"]["aws:sourceArn"] == (
        f"arn:aws:lambda:{run.region}:{ACCOUNT}:function:{repo['name']}-*"
    )
    assert run.outputs["fastFunctionName"].startswith(f"{repo['name']}-")


def test_image_pushed_with_ecr_token(run: Run) -> None:
    image = run.one("docker:index/image:Image").inputs
    registry = image["registry"]
    registry = registry.get("value", registry)  # the password makes the object a secret
    assert registry["server"] == f"{ACCOUNT}.dkr.ecr.{run.region}.amazonaws.com"
    assert registry["username"] == "AWS" and registry["password"] == "mock-password"
    assert image["build"]["context"] == "runtime"
    assert image["build"]["dockerfile"] == "runtime/Dockerfile"
    # One platform per image (Lambda refuses image indexes), built with BuildKit by the engine.
    assert image["build"]["platform"] in ("linux/amd64", "linux/arm64")
    assert image["build"]["builderVersion"] == "BuilderBuildKit"
    assert any(t == "aws:ecr/getAuthorizationToken:getAuthorizationToken" for t, _ in run.calls)
