// The header-signing vectors from botocore (`gen_vectors.py`): included by `header_tests.rs`
// and by `examples/boards/qemu-tests` (the same answers on a Cortex-M4). Plain data, no imports.

/// A JSON API call (service `ssm`) as botocore signs it.
#[allow(dead_code, reason = "each includer reads part of it")]
struct ApiVector {
    host: &'static str,
    region: &'static str,
    target: &'static str,
    body: &'static str,
    session_token: Option<&'static str>,
    unix_secs: u64,
    amz_date: &'static str,
    authorization: &'static str,
    canonical_request: &'static str,
    body_sha256: &'static str,
}

/// A WebSocket upgrade GET (service `ssmmessages`) as botocore signs it.
#[allow(dead_code, reason = "each includer reads part of it")]
struct UpgradeVector {
    url: &'static str,
    region: &'static str,
    session_token: Option<&'static str>,
    unix_secs: u64,
    authorization: &'static str,
    canonical_request: &'static str,
}

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

const API: [ApiVector; 4] = [
    ApiVector {
        host: "ssm.us-east-1.amazonaws.com",
        region: "us-east-1",
        target: "AmazonSSM.StartSession",
        body: "{\"Target\":\"i-0123456789abcdef0\"}",
        session_token: None,
        unix_secs: 1440938160,
        amz_date: "20150830T123600Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=dee0bdcea4690009ad2ac39ee57c761731d6a13df7c02a96c4e99867c42ac32f",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:ssm.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-target:AmazonSSM.StartSession\n\ncontent-type;host;x-amz-date;x-amz-target\n377a7737a95b10b17bfca1a52c122817c30dd291e6277e778108b1b379c0aca1",
        body_sha256: "377a7737a95b10b17bfca1a52c122817c30dd291e6277e778108b1b379c0aca1",
    },
    ApiVector {
        host: "ssm.eu-west-1.amazonaws.com",
        region: "eu-west-1",
        target: "AmazonSSM.ResumeSession",
        body: "{\"SessionId\":\"user-0123456789abcdef0\"}",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1795000000,
        amz_date: "20261118T110640Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261118/eu-west-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=8164d0f7e2fa61a7fea0dbf512e34a03d11b722279a762709f63e97e1b1b20f7",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:ssm.eu-west-1.amazonaws.com\nx-amz-date:20261118T110640Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\nx-amz-target:AmazonSSM.ResumeSession\n\ncontent-type;host;x-amz-date;x-amz-security-token;x-amz-target\n493f11624d3fd5cd4ec9727867045ae89df2bea00cdbfb17834902687d04550a",
        body_sha256: "493f11624d3fd5cd4ec9727867045ae89df2bea00cdbfb17834902687d04550a",
    },
    ApiVector {
        host: "ssm.cn-north-1.amazonaws.com.cn",
        region: "cn-north-1",
        target: "AmazonSSM.TerminateSession",
        body: "{\"SessionId\":\"Admin@corp,x=y+z-0123456789abcdef0\"}",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 0,
        amz_date: "19700101T000000Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/19700101/cn-north-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=f853d28e3b20ad99f6f15499528c3dc845394c77e0882f1ddf272824643da04b",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:ssm.cn-north-1.amazonaws.com.cn\nx-amz-date:19700101T000000Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\nx-amz-target:AmazonSSM.TerminateSession\n\ncontent-type;host;x-amz-date;x-amz-security-token;x-amz-target\ne428a280f9d9f9e3ed38799ff5995fd35a86dc333cea1c00f1a5438cdb62b16b",
        body_sha256: "e428a280f9d9f9e3ed38799ff5995fd35a86dc333cea1c00f1a5438cdb62b16b",
    },
    ApiVector {
        host: "127.0.0.1:8443",
        region: "us-east-1",
        target: "AmazonSSM.StartSession",
        body: "{\"Target\":\"i-0emulator\",\"DocumentName\":\"AWS-StartNonInteractiveCommand\",\"Parameters\":{\"command\":[\"echo \\\"hi\\\"\"]},\"Reason\":\"démo \\\\ end\"}",
        session_token: None,
        unix_secs: 1700000000,
        amz_date: "20231114T221320Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5bcbab764c7218d31d2eba0d28fbecd2b75f44e8d497097da41f4da41aadf685",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:8443\nx-amz-date:20231114T221320Z\nx-amz-target:AmazonSSM.StartSession\n\ncontent-type;host;x-amz-date;x-amz-target\n0f5cb5cfb96539b6412bd1ba0281d3ca3b84cfad5a10d2c9cc1a15857aaed149",
        body_sha256: "0f5cb5cfb96539b6412bd1ba0281d3ca3b84cfad5a10d2c9cc1a15857aaed149",
    },
];

const UPGRADE: [UpgradeVector; 3] = [
    UpgradeVector {
        url: "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/user-0123456789abcdef0?role=publish_subscribe",
        region: "us-east-1",
        session_token: None,
        unix_secs: 1440938160,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date, Signature=30b12d58f2421b9402afd123103d078e3de8ce11be56edb81493c0a166f0e7b0",
        canonical_request: "GET\n/v1/data-channel/user-0123456789abcdef0\nrole=publish_subscribe\nhost:ssmmessages.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    UpgradeVector {
        url: "wss://ssmmessages-fips.us-gov-west-1.amazonaws.com/v1/data-channel/Admin@corp,x=y+z-0123456789abcdef0?role=publish_subscribe&b=%2Fx%20y&a=1",
        region: "us-gov-west-1",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1795000000,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261118/us-gov-west-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=b965edbe56223e06c930e5876f85698b4450c812c786444982663cd21d43e1af",
        canonical_request: "GET\n/v1/data-channel/Admin%40corp%2Cx%3Dy%2Bz-0123456789abcdef0\na=1&b=%2Fx%20y&role=publish_subscribe\nhost:ssmmessages-fips.us-gov-west-1.amazonaws.com\nx-amz-date:20261118T110640Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    UpgradeVector {
        url: "wss://127.0.0.1:4443/v1/data-channel/emulator-0a1b2c?role=publish_subscribe",
        region: "eu-central-1",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1700000000,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-central-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=7dcfcffbdce7f70d932a1e29a9b58939b170c850a3bb3e3a3fc7f53f33e5725e",
        canonical_request: "GET\n/v1/data-channel/emulator-0a1b2c\nrole=publish_subscribe\nhost:127.0.0.1:4443\nx-amz-date:20231114T221320Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
];

