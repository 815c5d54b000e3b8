#!/usr/bin/env python3
"""Makes the SigV4 header-signing vectors of `header_vectors.rs` with botocore.

Not needed by the tests (their vectors are committed); run it to check or extend them:

    python3 -m venv /tmp/bv && /tmp/bv/bin/pip install botocore
    /tmp/bv/bin/python core/src/sigv4/gen_vectors.py

It prints Rust `Vector` literals: the request as botocore's `SigV4Auth` signs it (the signing
time fixed by replacing botocore's clock), the `Authorization` value, and botocore's canonical
request (for the failure message of the tests).

The JSON API requests carry the headers the AWS JSON 1.1 protocol sets before signing
(`X-Amz-Target`, `Content-Type`); the WebSocket upgrade GET carries none, as the official client's
signed upgrade (only `host`, `x-amz-date` and, with temporary credentials, `x-amz-security-token`).
"""

import datetime
import hashlib

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//+token=="

API = [
    # (url, region, target, body, token, unix_secs)
    (
        "https://ssm.us-east-1.amazonaws.com/",
        "us-east-1",
        "AmazonSSM.StartSession",
        '{"Target":"i-0123456789abcdef0"}',
        None,
        1440938160,
    ),
    (
        "https://ssm.eu-west-1.amazonaws.com/",
        "eu-west-1",
        "AmazonSSM.ResumeSession",
        '{"SessionId":"user-0123456789abcdef0"}',
        TOKEN,
        1795000000,
    ),
    (
        "https://ssm.cn-north-1.amazonaws.com.cn/",
        "cn-north-1",
        "AmazonSSM.TerminateSession",
        '{"SessionId":"Admin@corp,x=y+z-0123456789abcdef0"}',
        TOKEN,
        0,
    ),
    (
        "https://127.0.0.1:8443/",
        "us-east-1",
        "AmazonSSM.StartSession",
        '{"Target":"i-0emulator","DocumentName":"AWS-StartNonInteractiveCommand",'
        '"Parameters":{"command":["echo \\"hi\\""]},"Reason":"d\u00e9mo \\\\ end"}',
        None,
        1700000000,
    ),
]

UPGRADE = [
    # (url, region, token, unix_secs)
    (
        "https://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/user-0123456789abcdef0?role=publish_subscribe",
        "us-east-1",
        None,
        1440938160,
    ),
    (
        "https://ssmmessages-fips.us-gov-west-1.amazonaws.com/v1/data-channel/Admin@corp,x=y+z-0123456789abcdef0?role=publish_subscribe&b=%2Fx%20y&a=1",
        "us-gov-west-1",
        TOKEN,
        1795000000,
    ),
    (
        "https://127.0.0.1:4443/v1/data-channel/emulator-0a1b2c?role=publish_subscribe",
        "eu-central-1",
        TOKEN,
        1700000000,
    ),
]


def sign(method, url, region, service, headers, body, token, unix_secs):
    when = datetime.datetime.fromtimestamp(unix_secs, datetime.timezone.utc)
    botocore.auth.get_current_datetime = lambda *a, **k: when
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    auth = SigV4Auth(Credentials(AKID, SECRET, token), service, region)
    auth.add_auth(req)
    authorization = req.headers["Authorization"]
    del req.headers["Authorization"]
    canonical = auth.canonical_request(req)
    req.headers["Authorization"] = authorization
    return req, canonical


def rs(s):
    if s is None:
        return "None"
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main():
    print("const API: [ApiVector; %d] = [" % len(API))
    for url, region, target, body, token, secs in API:
        headers = {
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.1",
        }
        req, canonical = sign("POST", url, region, "ssm", headers, body.encode(), token, secs)
        host = url.split("/")[2]
        print("    ApiVector {")
        print("        host: %s," % rs(host))
        print("        region: %s," % rs(region))
        print("        target: %s," % rs(target))
        print("        body: %s," % rs(body))
        print("        session_token: %s," % (("Some(%s)" % rs(token)) if token else "None"))
        print("        unix_secs: %d," % secs)
        print("        amz_date: %s," % rs(req.headers["X-Amz-Date"]))
        print("        authorization: %s," % rs(req.headers["Authorization"]))
        print("        canonical_request: %s," % rs(canonical))
        print("        body_sha256: %s," % rs(hashlib.sha256(body.encode()).hexdigest()))
        print("    },")
    print("];")
    print()
    print("const UPGRADE: [UpgradeVector; %d] = [" % len(UPGRADE))
    for url, region, token, secs in UPGRADE:
        req, canonical = sign("GET", url, region, "ssmmessages", {}, None, token, secs)
        print("    UpgradeVector {")
        print("        url: %s," % rs("wss://" + url.split("://", 1)[1]))
        print("        region: %s," % rs(region))
        print("        session_token: %s," % (("Some(%s)" % rs(token)) if token else "None"))
        print("        unix_secs: %d," % secs)
        print("        authorization: %s," % rs(req.headers["Authorization"]))
        print("        canonical_request: %s," % rs(canonical))
        print("    },")
    print("];")


if __name__ == "__main__":
    main()
