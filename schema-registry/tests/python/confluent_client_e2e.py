"""Drives a running schema-registry server with confluent-kafka's SchemaRegistryClient.

Usage: confluent_client_e2e.py http://127.0.0.1:PORT
Exits non-zero (with the failing assertion) when the server misbehaves.
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

URL = sys.argv[1]
SUBJECT = "impressions-value"

V1 = {
    "type": "record", "name": "Impression", "namespace": "streamstate",
    "fields": [
        {"name": "impression_id", "type": "long"},
        {"name": "profile_id", "type": "long"},
        {"name": "title_id", "type": "long"},
        {"name": "ts_ms", "type": "long"},
        {"name": "row", "type": "int"},
        {"name": "rank", "type": "int"},
        {"name": "device", "type": "string"},
    ],
}
V2 = json.loads(json.dumps(V1))
V2["fields"][4]["type"] = "long"
V2["fields"].append({"name": "country", "type": "string", "default": "unknown"})
# Adds a field without a default: not BACKWARD compatible with V2.
V3 = json.loads(json.dumps(V2))
V3["fields"].append({"name": "session", "type": "string"})


def schema(d):
    return Schema(json.dumps(d), "AVRO")


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except SchemaRegistryError as e:
        assert e.error_code == code, f"expected error {code}, got {e.error_code}: {e.error_message}"
        return e
    raise AssertionError(f"expected error {code}, call succeeded")


def fresh():
    # A new client per step: the client caches aggressively.
    return SchemaRegistryClient({"url": URL})


c = fresh()
assert c.get_subjects() == [], c.get_subjects()
assert c.set_compatibility(level="BACKWARD")["compatibility"] == "BACKWARD"
assert c.get_compatibility() == "BACKWARD"

id1 = c.register_schema(SUBJECT, schema(V1))
assert fresh().register_schema(SUBJECT, schema(V1)) == id1, "registering again must return the same id"
latest = fresh().get_latest_version(SUBJECT)
assert (latest.version, latest.schema_id) == (1, id1), latest
fetched = json.loads(fresh().get_schema(id1).schema_str)
assert fetched["name"] == "streamstate.Impression", fetched
assert [f["name"] for f in fetched["fields"]] == [f["name"] for f in V1["fields"]]

id2 = fresh().register_schema(SUBJECT, schema(V2))
assert id2 != id1
assert fresh().get_versions(SUBJECT) == [1, 2]
assert fresh().lookup_schema(SUBJECT, schema(V1)).version == 1

assert fresh().test_compatibility(SUBJECT, schema(V3)) is False
assert fresh().test_compatibility(SUBJECT, schema(V1), version=1) is True
e = expect_error(409, fresh().register_schema, SUBJECT, schema(V3))
assert "READER_FIELD_MISSING_DEFAULT_VALUE" in e.error_message, e.error_message
assert fresh().get_versions(SUBJECT) == [1, 2], "a refused registration must not store anything"

assert fresh().set_compatibility(SUBJECT, "NONE")["compatibility"] == "NONE"
assert fresh().get_compatibility(SUBJECT) == "NONE"
assert fresh().get_compatibility() == "BACKWARD", "the global level is unchanged"
id3 = fresh().register_schema(SUBJECT, schema(V3))
assert fresh().get_latest_version(SUBJECT).version == 3

expect_error(42203, fresh().set_compatibility, SUBJECT, "SIDEWAYS")
expect_error(42201, fresh().register_schema, SUBJECT, Schema('{"type": "record", "name": "X"}', "AVRO"))
bad_default = {"type": "record", "name": "B", "fields": [{"name": "n", "type": "int", "default": "x"}]}
expect_error(42201, fresh().register_schema, SUBJECT, schema(bad_default))
expect_error(40402, fresh().get_version, SUBJECT, 99)
expect_error(40401, fresh().get_latest_version, "no-such-subject")
expect_error(40403, fresh().get_schema, 999999)

assert fresh().delete_version(SUBJECT, 3) == 3
assert fresh().get_versions(SUBJECT) == [1, 2]
assert fresh().delete_version(SUBJECT, 3, permanent=True) == 3
expect_error(40407, fresh().delete_version, SUBJECT, 2, permanent=True)

other = "plays-value"
fresh().register_schema(other, Schema('"string"', "AVRO"))
assert sorted(fresh().get_subjects()) == [SUBJECT, other]
assert fresh().delete_subject(SUBJECT) == [1, 2]
assert fresh().get_subjects() == [other]
assert fresh().delete_subject(SUBJECT, permanent=True) == [1, 2]
expect_error(40401, fresh().get_versions, SUBJECT)

print("confluent-kafka SchemaRegistryClient e2e: OK")
