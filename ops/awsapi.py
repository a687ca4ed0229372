"""The control node's clients of the AWS API: which endpoint, region, CA and configuration,
with timeouts on every call (an API that does not answer fails the call, it never hangs it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

TIMEOUTS = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2})


@dataclass
class Endpoint:
    url: str | None  # None: AWS itself
    region: str
    ca_bundle: str | None
    # The control node's own AWS configuration file (AWS_CONFIG_FILE's format), if not the
    # default credential chain's.
    config_file: str | None = None

    def client(self, service: str, pair: dict[str, str] | None = None) -> Any:
        if pair is None and self.config_file:
            core = botocore.session.Session()
            core.set_config_variable("config_file", self.config_file)
            session = boto3.session.Session(botocore_session=core, region_name=self.region)
        else:
            session = boto3.session.Session(
                aws_access_key_id=pair["aws_access_key_id"] if pair else None,
                aws_secret_access_key=pair["aws_secret_access_key"] if pair else None,
                region_name=self.region,
            )
        return session.client(
            service, endpoint_url=self.url, verify=self.ca_bundle or True, config=TIMEOUTS
        )
