#!/usr/bin/env python3
"""Validate the Spin manifests in examples/http-service/ against Spin's published manifest
schema (manifest v2, JSON Schema draft 7). The schema is not committed (Spin's, Apache-2.0):
pass its path: `spin/manifest-v2/latest.json` in the spinframework/spin repository
(checked with commit e823f43e, the source of Spin's schemas page).

    python3 tools/spin/check-manifests.py SCHEMA.json

Needs Python 3.11+ (tomllib) and `jsonschema`. A control manifest with an unknown component
key must be refused, so a schema that accepts anything fails the check.
"""
import json
import pathlib
import sys
import tomllib

import jsonschema

root = pathlib.Path(__file__).resolve().parents[2]
schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
validator = jsonschema.Draft7Validator(schema)
failed = 0
for path in ["examples/http-service/spin.toml", "examples/http-service/compose/spin.toml"]:
    manifest = tomllib.loads((root / path).read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]
    print(f"{path}: {'valid' if not errors else 'INVALID'}")
    for e in errors:
        print(f"  {e}")
    failed += bool(errors)

control = tomllib.loads((root / "examples/http-service/spin.toml").read_text())
control["component"]["edgeslm"]["not_a_spin_key"] = True
refused = any(True for _ in validator.iter_errors(control))
print(f"control (an unknown component key): {'refused' if refused else 'ACCEPTED'}")
sys.exit(1 if failed or not refused else 0)
