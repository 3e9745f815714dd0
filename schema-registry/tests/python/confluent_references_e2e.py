"""Drives a running schema-registry server's schema references with
confluent-kafka's SchemaRegistryClient (and, when fastavro is installed, its
AvroSerializer / AvroDeserializer, which resolve references themselves).

Usage: confluent_references_e2e.py http://127.0.0.1:PORT
Exits non-zero (with the failing assertion) when the server misbehaves.
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

URL = sys.argv[1]

ADDRESS = {
    "type": "record", "name": "Address", "namespace": "com.example",
    "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}],
}
ADDRESS2 = json.loads(json.dumps(ADDRESS))
ADDRESS2["fields"].append({"name": "country", "type": "string", "default": "NL"})
USER = {
    "type": "record", "name": "User", "namespace": "com.example",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "home", "type": "com.example.Address"},
        {"name": "work", "type": ["null", "com.example.Address"], "default": None},
    ],
}


def fresh():
    # A new client per step: the client caches aggressively.
    return SchemaRegistryClient({"url": URL})


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except SchemaRegistryError as e:
        assert e.error_code == code, f"expected error {code}, got {e.error_code}: {e.error_message}"
        return e
    raise AssertionError(f"expected error {code}, call succeeded")


def refs_of(schema):
    return [(r.name, r.subject, r.version) for r in (schema.references or [])]


def ref(version):
    return SchemaReference("com.example.Address", "address-value", version)


addr_id = fresh().register_schema("address-value", Schema(json.dumps(ADDRESS), "AVRO"))
user = Schema(json.dumps(USER), "AVRO", [ref(1)])
user_id = fresh().register_schema("user-value", user)
assert user_id != addr_id
assert fresh().register_schema("user-value", user) == user_id, "registering again must return the same id"

# Served as registered: the referenced type by name, with the references.
got = fresh().get_schema(user_id)
assert refs_of(got) == [("com.example.Address", "address-value", 1)], refs_of(got)
home = [f for f in json.loads(got.schema_str)["fields"] if f["name"] == "home"][0]
assert home["type"] == "com.example.Address", home
latest = fresh().get_latest_version("user-value")
assert (latest.version, latest.schema_id) == (1, user_id), latest
assert refs_of(latest.schema) == [("com.example.Address", "address-value", 1)]
assert fresh().get_version("user-value", 1).schema_id == user_id
assert fresh().lookup_schema("user-value", user).version == 1

# Without the reference the type is unknown; a reference must exist.
e = expect_error(42201, fresh().register_schema, "user-value", Schema(json.dumps(USER), "AVRO"))
assert "com.example.Address" in e.error_message, e.error_message
e = expect_error(42201, fresh().register_schema, "user-value", Schema(json.dumps(USER), "AVRO", [ref(7)]))
assert "address-value" in e.error_message, e.error_message

# The referenced subject evolves; the same text referencing version 2 is
# another schema, checked for compatibility through the references.
assert fresh().register_schema("address-value", Schema(json.dumps(ADDRESS2), "AVRO")) != addr_id
user2 = Schema(json.dumps(USER), "AVRO", [ref(2)])
expect_error(40403, fresh().lookup_schema, "user-value", user2)
assert fresh().test_compatibility("user-value", user2) is True
user2_id = fresh().register_schema("user-value", user2)
assert user2_id not in (user_id, addr_id)
assert fresh().get_versions("user-value") == [1, 2]
assert refs_of(fresh().get_schema(user2_id)) == [("com.example.Address", "address-value", 2)]

# Who references what; a referenced version cannot be deleted (42206).
assert fresh().get_referenced_by("address-value", 1) == [user_id]
assert fresh().get_referenced_by("address-value", 2) == [user2_id]
assert fresh().get_referenced_by("user-value", 1) == []
expect_error(42206, fresh().delete_version, "address-value", 1)
expect_error(42206, fresh().delete_subject, "address-value")

try:
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError as e:
    print(f"SKIPPED serializer round trip: {e} (pip install fastavro)")
else:
    ctx = SerializationContext("user", MessageField.VALUE)
    ser = AvroSerializer(fresh(), user2, conf={"auto.register.schemas": False, "use.latest.version": True})
    value = {
        "name": "ann",
        "home": {"city": "Delft", "zip": "2611", "country": "NL"},
        "work": {"city": "Leiden", "zip": "2311", "country": "NL"},
    }
    data = ser(value, ctx)
    assert int.from_bytes(data[1:5], "big") == user2_id, data[:5]
    # The deserializer fetches the writer schema by id and its references by version.
    assert AvroDeserializer(fresh())(data, ctx) == value
    print("serializer round trip through references: OK")

# Once its referencer is gone, a version can go; the referencer's id still
# resolves (the registry keeps the referenced schema ids).
assert fresh().delete_version("user-value", 1) == 1
assert fresh().get_referenced_by("address-value", 1) == []
assert fresh().delete_version("address-value", 1) == 1
assert fresh().delete_version("address-value", 1, permanent=True) == 1
assert refs_of(fresh().get_schema(user_id)) == [("com.example.Address", "address-value", 1)]

print("confluent-kafka references e2e: OK")
