#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the official frame vectors and the
unit tests' sample payloads. Deterministic: file names are the SHA-1 of the contents, as libFuzzer
names its own finds. Run from anywhere: python3 fuzz/make_corpus.py"""
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "shared", "vectors", "frames.json")


def write(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def ws_frame(opcode, payload, fin=True, mask=None):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += bytes(mask)
    return head + payload


vectors = json.load(open(VECTORS))
frames = [bytes.fromhex(v["frame_hex"]) for v in vectors]
for f in frames:
    write("frame", f)

payloads = [bytes.fromhex(v["payload_hex"]) for v in vectors if v["message_type"] == "acknowledge"]
payloads += [
    b'{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22","type":"LocalPortForwarding","localPortNumber":0}}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:us-east-1:123456789012:key/abc"}},{"ActionType":"FutureThing","ActionParameters":[1,{"x":2}]}]}',
    b'{"AgentVersion":"3.1","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"NonInteractiveCommands","Properties":{"linux":{"commands":"echo \\"hi\\"\\nexit 3","runAsElevated":false,"separateOutputStream":"true","stdOutSeparatorPrefix":"OUT:","stdErrSeparatorPrefix":"ERR\\r\\n"}}}}]}',
    b'{"ClientVersion":"1.2.694.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""},{"ActionType":"KMSEncryption","ActionStatus":2,"ActionResult":{"KMSCipherTextKey":"a2V5","KMSCipherTextHash":"aGFzaA=="},"Error":"denied"}],"Errors":["one","t\\"wo"]}',
    b'{"HandshakeTimeToComplete":1500000,"CustomerMessage":"Hi \\"you\\"\\n\\u00e9\\ud83d\\ude00 \\u003c/b\\u003e"}',
    b'{"Challenge":"q83vEjRWeJA="}',
    b'{"MessageId":"m","CreatedDate":"2026-11-26T02:00:00.000Z","DestinationId":"d","SessionId":"s-1","MessageType":"channel_closed","SchemaVersion":1,"Output":"Session terminated\\n"}',
    b'{"MessageSchemaVersion":"1.0","RequestId":"0ee0292a-b4f1-443b-bd8e-8c2f26672a91","TokenValue":"not-a-real-token","ClientId":"c","ClientVersion":"1.2.779.0"}',
    b'{"cols":120,"rows":40}',
    b'{"portNumber":3306,"localPortNumber":"","host":"db.internal","type":"LocalPortForwarding"}',
    b'{"linux":{"commands":"ls\\n","separateOutputStream":true},"windows":{"commands":"dir"}}',
    b"\x00\x00\x00\x02",
    b"EXIT_CODE: -1\n",
]
for p in payloads:
    write("payload", p)

sid = "user-0123456789abcdef0"
for host in ["wss://ssmmessages.us-east-1.amazonaws.com", "wss://ssmmessages-fips.us-gov-west-1.amazonaws.com",
             "wss://ssmmessages.cn-north-1.amazonaws.com.cn", "ws://127.0.0.1:8080"]:
    url = f"{host}/v1/data-channel/{sid}?role=publish_subscribe"
    write("start_session_response", json.dumps(
        {"SessionId": sid, "StreamUrl": url, "TokenValue": "AAEAAbKr0Vx1notARealToken+/=zz"}).encode())
write("start_session_response",
      b'{"SessionId":"user-0123456789abcdef0","StreamUrl":"wss:\\/\\/ssmmessages.us-east-1.amazonaws.com\\/v1\\/data-channel\\/user-0123456789abcdef0?role=publish_subscribe","TokenValue":"AAE\\u0041","ResponseMetadata":{"x":[1]}}')

# websocket: first byte picks the chunk size, the rest is the stream.
request = (b"GET /v1/data-channel/s?role=publish_subscribe HTTP/1.1\r\nHost: ssmmessages.us-east-1.amazonaws.com\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
m = [0x37, 0xfa, 0x21, 0x3d]
streams = [
    request, response,
    response + ws_frame(0x2, frames[4]),
    ws_frame(0x1, b'{"MessageSchemaVersion":"1.0"}', mask=m) + ws_frame(0x2, frames[1], mask=m),
    ws_frame(0x1, b"Hel", fin=False) + ws_frame(0x9, b"ping") + ws_frame(0x0, b"lo"),
    ws_frame(0x2, bytes(300)) + ws_frame(0x8, struct.pack(">H", 1000) + b"Bye"),
    ws_frame(0x9, b"", mask=m) + ws_frame(0x8, b"", mask=m),
]
for chunk in [0, 7]:
    for s in streams:
        write("websocket", bytes([chunk]) + s)

# engine: (op, arg) pairs; see fuzz_targets/engine.rs. Op numbers: 0 advance, 1 client write,
# 2 agent write, 3 agent stderr, 4/5 deliver to agent/client, 6 deliver all, 7 cut, 8 connect,
# 9 resize+flag, 10 close family, 11 inject.
def ops(*pairs):
    return bytes(b for p in pairs for b in p)

handshake = ops((6, 20))
write("engine", handshake)
write("engine", ops((6, 20), (1, 100), (2, 120), (3, 30), (6, 20), (0, 50), (6, 20)))
write("engine", ops((6, 20), (1, 200), (4, 1), (4, 0), (5, 2), (0, 60), (6, 10), (0, 255), (6, 10)))
write("engine", ops((6, 20), (2, 200), (7, 0), (0, 20), (8, 0), (6, 30), (0, 100), (6, 30)))
write("engine", ops((6, 20), (9, 80), (10, 3), (10, 2), (6, 20), (0, 250), (6, 20)))
write("engine", ops((6, 20), (10, 4), (1, 50), (6, 5), (10, 5), (6, 20), (10, 0), (6, 20), (10, 1)))
# A hostile binary message to the agent: a frame from the official vectors.
write("engine", ops((6, 20), (11, len(frames[1]))) + frames[1] + ops((6, 5)))

# kms: first byte picks the path (0 sealed payload, 1 client, 2 agent); see fuzz_targets/kms.rs.
import base64
blob = bytes(range(1, 40))
key_b64 = base64.b64encode(blob).decode()
hash_b64 = base64.b64encode(hashlib.sha256(blob).digest()).decode()
write("kms", bytes([0]) + bytes(range(40)))
write("kms", bytes([3]) + b"")
write("kms", bytes([1]) + b'{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm","Challenge":"AAECAwQFBgcICQoLDA0ODw=="}}]}')
write("kms", bytes([1]) + b'{"Challenge":"' + base64.b64encode(bytes(92)) + b'"}')
for ack in ["", ',"ChallengeAcknowledgement":true']:
    write("kms", bytes([2]) + ('{"ClientVersion":"1.2.779.0","ProcessedClientActions":[{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{"KMSCipherTextKey":"%s","KMSCipherTextHash":"%s"%s},"Error":""}],"Errors":[]}' % (key_b64, hash_b64, ack)).encode())

# engine with KMS encryption: bit 7 of the first byte (138 is op 6, deliver all, with it).
kms_on = bytes([138, 20])
write("engine", kms_on)
write("engine", kms_on + ops((1, 100), (2, 120), (3, 30), (6, 20), (0, 50), (6, 20)))
write("engine", kms_on + ops((2, 200), (7, 0), (0, 20), (8, 0), (6, 30), (0, 100), (6, 30)))
write("engine", kms_on + ops((1, 200), (4, 1), (4, 0), (5, 2), (0, 60), (6, 10), (10, 3), (6, 20)))
