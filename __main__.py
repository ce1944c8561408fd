"""The sweep stack on AWS, as a Pulumi program (`pulumi up --stack sandbox`).

Deploys (as the components land): the results bucket, the parent, worker and failure-recorder
Lambdas, the REST API with request validation, Glue tables and an Athena workgroup, and one
least-privilege IAM role per function. Today it only reads and exports its typed config.
"""

from __future__ import annotations

import pulumi

from infra.config import StackConfig


def build_stack(config: StackConfig) -> None:
    """Create every resource of the stack; called after config (or test mocks) are set."""
    pulumi.export("name_prefix", config.name_prefix)
    pulumi.export("results_prefix", config.results_prefix)


if __name__ == "__main__":
    build_stack(StackConfig.from_pulumi(pulumi.Config("sweep")))
