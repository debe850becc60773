"""The Meltano SDK's own stream mapper over a Singer stream: reads a config (its stream_maps,
stream_map_config and flattening_* keys) and the tap's unmapped messages on stdin, and writes
the SCHEMA and RECORD messages an SDK tap with that config would send. Run with the Python of a
virtualenv that has singer-sdk (meltanolabs-target-postgres's); check.py compares its output
with tap-harvest's own mapping.

    python sdk_mapper.py CONFIG.json < unmapped.jsonl > mapped.jsonl
"""
import json
import logging
import sys

from singer_sdk.mapper import PluginMapper, RemoveRecordTransform

config = json.load(open(sys.argv[1]))
mapper = PluginMapper(plugin_config=config, logger=logging.getLogger("sdk-mapper"))
out = sys.stdout
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "SCHEMA":
        mapper.register_raw_stream_schema(m["stream"], m["schema"], m.get("key_properties"))
        for sm in mapper.stream_maps[m["stream"]]:
            if isinstance(sm, RemoveRecordTransform):
                continue
            out.write(json.dumps({"type": "SCHEMA", "stream": sm.stream_alias,
                                  "schema": sm.transformed_schema,
                                  "key_properties": list(sm.transformed_key_properties or [])}) + "\n")
    elif m["type"] == "RECORD":
        for sm in mapper.stream_maps[m["stream"]]:
            if isinstance(sm, RemoveRecordTransform) or not sm.get_filter_result(m["record"]):
                continue
            r = sm.transform(m["record"])
            if r is not None:
                out.write(json.dumps({"type": "RECORD", "stream": sm.stream_alias, "record": r}) + "\n")
