"""PricingImage: the ECR repository of this region and the runtime image built and pushed to it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components.iam import AccountInfo, statement, unscoped_statement

# Images kept in the repository. Lambda and the job definition pin a digest, so only the newest
# is in use; the others allow a quick rollback by digest.
KEEP_IMAGES = 10


@dataclass(frozen=True)
class PricingImageArgs:
    name_prefix: str
    platform: str  # "linux/amd64" or "linux/arm64"
    account: AccountInfo
    # forceDestroy: `pulumi destroy` deletes the repository with the images in it.
    force_delete: bool = False
    context: str = "runtime"
    dockerfile: str = "runtime/Dockerfile"


class PricingImage(pulumi.ComponentResource):
    """ECR repository (scan on push, lifecycle) plus the image built from runtime/.

    `repo_digest` (<repository>@sha256:...) is what Lambda and Batch run: a rebuild changes the
    digest, which updates both consumers in the same `pulumi up`.
    """

    repository: aws.ecr.Repository
    image: docker.Image
    repo_digest: pulumi.Output[str]

    def __init__(
        self, name: str, args: PricingImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:PricingImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # ECR names are regional, but the prefix carries the region anyway so that every name of
        # the stack reads the same way. force_delete (the forceDestroy setting, off by default,
        # like the buckets' force_destroy): without it `pulumi destroy` stops at a repository
        # that holds images; with it the images, rebuilt from source on every `pulumi up`, are
        # deleted with the repository.
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            name=args.name_prefix,
            image_tag_mutability="MUTABLE",  # the tag moves; consumers pin the digest
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=args.force_delete,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the {KEEP_IMAGES} most recent images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": KEEP_IMAGES,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=child,
        )
        # Lambda pulls the image with its service principal. Granting it here, limited to this
        # stack's functions, saves Lambda from editing the policy itself (which would need
        # ecr:SetRepositoryPolicy at create time and show up as drift).
        policy = aws.ecr.RepositoryPolicy(
            f"{name}-lambda-pull",
            repository=self.repository.name,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "LambdaECRImageRetrievalPolicy",
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                            "Condition": {
                                "StringLike": {
                                    "aws:sourceArn": args.account.arn(
                                        "lambda", f"function:{args.name_prefix}-*"
                                    )
                                }
                            },
                        }
                    ],
                }
            ),
            opts=child,
        )

        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        # Lambda accepts a single-platform image manifest only, not an image index. pulumi-docker
        # 5.2.0's Image has no provenance/SBOM/output options: it builds through the Docker
        # Engine API (POST /build with a BuildKit session), where the attestations the buildx
        # CLI adds by default are never requested, for exactly one `platform`, and pushes the
        # image it built. What it pushes still depends on the engine's image store, which the
        # program cannot see: docs/image.md says how to check the pushed digest and what to
        # change if it is an index.
        self.image = docker.Image(
            f"{name}-image",
            image_name=self.repository.repository_url.apply(lambda url: f"{url}:latest"),
            build=docker.DockerBuildArgs(
                context=args.context,
                dockerfile=args.dockerfile,
                platform=args.platform,  # one platform, never a list
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
            ),
            registry=docker.RegistryArgs(
                server=self.repository.repository_url.apply(lambda url: url.split("/")[0]),
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            # The digest is only consumed once Lambda may pull it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.repo_digest = self.image.repo_digest
        self.register_outputs(
            {
                "repositoryUrl": self.repository.repository_url,
                "repositoryArn": self.repository.arn,
                "repoDigest": self.repo_digest,
            }
        )


def pull_statements(repository_arn: pulumi.Input[str]) -> list[dict]:
    """What an ECS task execution role needs to pull this repository's images."""
    return [
        # GetAuthorizationToken has no resource-level permissions (AWS-required "*").
        unscoped_statement("EcrAuth", ["ecr:GetAuthorizationToken"]),
        statement(
            "EcrPull",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [repository_arn],
        ),
    ]
