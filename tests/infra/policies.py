"""Collect every IAM document a run registered: identity, resource and trust policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .harness import Run

# (resource type, input property) of every property that holds an IAM policy document.
POLICY_PROPERTIES = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
}
# Documents whose statements name a Resource (parliament only understands those).
RESOURCE_DOCUMENTS = {
    "aws:iam/rolePolicy:RolePolicy",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:sqs/queuePolicy:QueuePolicy",
}


@dataclass
class PolicyDoc:
    type: str
    name: str
    text: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.text)

    @property
    def statements(self) -> list[dict[str, Any]]:
        statements = self.document["Statement"]
        return statements if isinstance(statements, list) else [statements]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(run: Run) -> list[PolicyDoc]:
    docs = []
    for resource in run.resources:
        prop = POLICY_PROPERTIES.get(resource.type)
        if prop and prop in resource.inputs:
            docs.append(PolicyDoc(resource.type, resource.name, resource.inputs[prop]))
    return docs
