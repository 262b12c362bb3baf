"""Marathon's rules for the app fields this package uses, as a JSON Schema (draft-04).

Taken from Marathon's own app schema, mesosphere/marathon
`docs/docs/rest-api/public/api/v2/schema/AppDefinition.json` (as it was before commit
ef6874f89, "Remove JSON Schema Resources from 1.8"; Marathon 1.5–1.7 validated every app
against it, and the RAML types in `docs/docs/rest-api/public/api/v2/types/app.raml` say the
same since). Only the fields the package sets are kept, each with Marathon's constraints;
`additionalProperties: false` at every level makes a misspelled or unsupported field an error,
as it is in Marathon's schema.
"""

PATH_ID = "^(\\/?((\\.{2})|([a-z0-9][a-z0-9\\-.]*[a-z0-9]+)|([a-z0-9]*))($|\\/))+$"
PORT = {"type": "integer", "minimum": 0, "maximum": 65535}
NON_NEGATIVE_INTEGER = {"type": "integer", "minimum": 0}

MARATHON_APP = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "additionalProperties": False,
    "required": ["id"],
    "not": {"allOf": [{"required": ["cmd"]}, {"required": ["args"]}]},
    "properties": {
        "id": {"type": "string", "pattern": PATH_ID, "minLength": 1},
        "cmd": {"type": "string", "minLength": 1},
        "instances": NON_NEGATIVE_INTEGER,
        "cpus": {"type": "number", "minimum": 0},
        "mem": {"type": "number", "minimum": 0},
        "disk": {"type": "number", "minimum": 0},
        "requirePorts": {"type": "boolean"},
        "taskKillGracePeriodSeconds": NON_NEGATIVE_INTEGER,
        "container": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": ["MESOS", "DOCKER"]},
                "docker": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 1},
                        "forcePullImage": {"type": "boolean"},
                    },
                },
            },
        },
        "fetch": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["uri"],
                "properties": {
                    "uri": {"type": "string"},
                    "executable": {"type": "boolean"},
                    "extract": {"type": "boolean"},
                    "cache": {"type": "boolean"},
                    "destPath": {"type": "string"},
                },
            },
        },
        "portDefinitions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["port"],
                "properties": {
                    "port": PORT,
                    "protocol": {"type": "string", "enum": ["tcp", "udp"]},
                    "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
        "env": {
            "type": "object",
            "patternProperties": {
                ".*": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["secret"],
                            "properties": {"secret": {"type": "string", "minLength": 1}},
                        },
                    ]
                }
            },
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        # Secrets (Marathon 1.5+, DC/OS Enterprise's secret store plugin): mesosphere/marathon
        # `docs/docs/secrets.md` ("secrets": {name: {"source": path}}, an env var takes
        # {"secret": name}) and `plugin-interface/.../plugin/Secret.scala` (`source`).
        "secrets": {
            "type": "object",
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["source"],
                    "properties": {"source": {"type": "string", "minLength": 1}},
                }
            },
        },
        "healthChecks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "protocol": {
                        "type": "string",
                        "enum": [
                            "HTTP",
                            "HTTPS",
                            "TCP",
                            "COMMAND",
                            "MESOS_HTTP",
                            "MESOS_HTTPS",
                            "MESOS_TCP",
                        ],
                    },
                    "path": {"type": "string"},
                    "portIndex": NON_NEGATIVE_INTEGER,
                    "gracePeriodSeconds": NON_NEGATIVE_INTEGER,
                    "intervalSeconds": NON_NEGATIVE_INTEGER,
                    "timeoutSeconds": NON_NEGATIVE_INTEGER,
                    "maxConsecutiveFailures": NON_NEGATIVE_INTEGER,
                },
            },
        },
        "upgradeStrategy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "minimumHealthCapacity": {"type": "number", "minimum": 0, "maximum": 1},
                "maximumOverCapacity": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    },
}
