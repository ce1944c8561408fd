"""The sweep stack on AWS, as a Pulumi program (`pulumi up --stack sandbox`).

Deploys, one component per concern (``infra/``):
- artifacts: the code zip and dependency layers, built here (``infra/packaging``) when missing or
  stale and reused from ``build/lambda`` otherwise;
- storage: the results bucket (public access blocked, SSE-S3, TLS-only policy, versioning,
  lifecycle rules from config) and an artifacts bucket with the uploaded code and layers;
- iam: one execution role per function, each with only its own least-privilege policy
  (optionally under a permissions boundary);
- compute: the parent, worker and failure-recorder Lambdas with their log groups, the
  environment the entry points validate, and the worker's async-invoke config (retries, event
  age, on-failure destination to the recorder, optional reserved concurrency);
- api: the REST API imported from the contract's OpenAPI document (AWS_IAM auth, body
  validator), redeployed whenever the document changes; a stage with throttling and access logs;
- analytics: the Glue database and tables (outcomes, manifests, one points table per kernel),
  an Athena workgroup with an enforced, encrypted result location and a bytes-scanned cutoff,
  and the shipped queries as named queries.

Exports what ``sweep_sdk.cloud.RemoteConfig.from_stack_outputs`` reads (api_url, region,
bucket, prefix, workgroup, database), the function names and the artifact hashes.
"""

from __future__ import annotations

import pulumi

from infra.config import StackConfig
from infra.packaging import BuildError
from infra.stack import build_stack


def main() -> None:
    config = StackConfig.from_pulumi(pulumi.Config("sweep"))
    try:
        outputs = build_stack(config)
    except (BuildError, ValueError, FileNotFoundError) as exc:
        # The preview stops here with the reason, and no function is deployed without its code
        # and layers.
        raise pulumi.RunError(f"the Lambda artifacts: {exc}") from exc
    for name, value in outputs.items():
        pulumi.export(name, value)


if __name__ == "__main__":
    main()
