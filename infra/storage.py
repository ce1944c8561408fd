"""Storage: the results bucket (runs, outcomes, points, Athena query results) and the artifacts
bucket the Lambda code is uploaded to. Both block public access, deny plain HTTP, encrypt at
rest and keep versions; lifecycle rules come from config."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.artifacts import Artifact, Artifacts
from infra.config import ATHENA_RESULTS_PREFIX, StackConfig
from infra.iam import tls_only_bucket_policy


class PrivateBucket(pulumi.ComponentResource):
    """A bucket with ACLs disabled, public access blocked, SSE-S3 encryption, versioning and a
    TLS-only bucket policy."""

    TYPE = "sweep:storage:PrivateBucket"

    def __init__(
        self,
        name: str,
        force_destroy: bool,
        lifecycle_rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(name, force_destroy=force_destroy, opts=child)
        ownership = aws.s3.BucketOwnershipControls(
            name,
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        public = aws.s3.BucketPublicAccessBlock(
            name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            name,
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketPolicy(
            name,
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(tls_only_bucket_policy(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public, ownership]),
        )
        aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=self.bucket.id,
            rules=lifecycle_rules,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})


def _rule(
    rule_id: str,
    prefix: str,
    *,
    expire_days: int | None = None,
    noncurrent_days: int | None = None,
    abort_days: int | None = None,
) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
        expiration=(
            None
            if expire_days is None
            else aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=expire_days)
        ),
        noncurrent_version_expiration=(
            None
            if noncurrent_days is None
            else aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=noncurrent_days
            )
        ),
        abort_incomplete_multipart_upload=(
            None
            if abort_days is None
            else aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=abort_days
            )
        ),
    )


def _housekeeping(config: StackConfig) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Rules for every bucket: abort stale multipart uploads, expire old versions."""
    return [
        _rule("abort-incomplete-uploads", "", abort_days=1),
        _rule(
            "expire-noncurrent-versions",
            "",
            noncurrent_days=config.noncurrent_versions_expire_days,
        ),
    ]


def results_lifecycle(config: StackConfig) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Housekeeping, Athena results expiry, and (optionally) results expiry."""
    rules = _housekeeping(config)
    rules.append(
        _rule(
            "expire-athena-results",
            ATHENA_RESULTS_PREFIX,
            expire_days=config.athena_results_expire_days,
        )
    )
    if config.results_expire_days is not None:
        rules.append(
            _rule(
                "expire-results",
                f"{config.results_prefix}/",
                expire_days=config.results_expire_days,
            )
        )
    return rules


def artifacts_lifecycle(config: StackConfig) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    return _housekeeping(config)


class ResultsStore(pulumi.ComponentResource):
    """The results bucket, and the artifacts bucket holding the Lambda zips."""

    TYPE = "sweep:storage:ResultsStore"

    def __init__(
        self,
        name: str,
        config: StackConfig,
        artifacts: Artifacts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Results outlive a `pulumi destroy` unless emptied first: no force_destroy.
        self.results = PrivateBucket(
            f"{config.name_prefix}-results", False, results_lifecycle(config), opts=child
        )
        self.artifacts = PrivateBucket(
            f"{config.name_prefix}-artifacts", True, artifacts_lifecycle(config), opts=child
        )
        self.uploads = {
            a.name: self._upload(name, a, a.path) for a in artifacts.all() if a.path is not None
        }
        self.register_outputs(
            {
                "results_bucket": self.results.bucket.bucket,
                "artifacts_bucket": self.artifacts.bucket.bucket,
            }
        )

    def location(self, artifact: Artifact) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Bucket and key the functions take ``artifact`` from: the upload, when this stack
        uploads it (so the function waits for it), else the object already there."""
        upload = self.uploads.get(artifact.name)
        if upload is not None:
            return upload.bucket, upload.key
        return self.artifacts.bucket.bucket, pulumi.Output.from_input(artifact.key)

    def _upload(self, name: str, artifact: Artifact, path: Path) -> aws.s3.BucketObjectv2:
        # Kept when replaced or dropped: an earlier build stays deployable (a rollback names it
        # with useExistingArtifacts); the keys are content-addressed, so nothing is overwritten.
        return aws.s3.BucketObjectv2(
            f"{name}-{artifact.kind}",
            bucket=self.artifacts.bucket.id,
            key=artifact.key,
            source=pulumi.FileAsset(str(path)),
            content_type="application/zip",
            checksum_algorithm="SHA256",
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
