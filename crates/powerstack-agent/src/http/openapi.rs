//! `GET /v1/openapi.json`: the API described as OpenAPI 3.0, written as data. A test checks it
//! against the router's route list, both ways.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn write_errors() -> Vec<(&'static str, Value)> {
    vec![
        ("401", error_response("Over TCP: no bearer token, or a wrong one.")),
        (
            "403",
            error_response(
                "The caller may not write (Unix socket: not root nor allowed; TCP: writes disabled).",
            ),
        ),
    ]
}

/// A job's `user` or `app` label as the job table takes it: null or absent, else at most
/// [`crate::job::MAX_LABEL_LEN`] characters and no control character (`char::is_control`: C0,
/// DEL and C1).
fn label() -> Value {
    json!({
        "type": "string",
        "nullable": true,
        "maxLength": crate::job::MAX_LABEL_LEN,
        "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    })
}

fn responses(list: Vec<(&'static str, Value)>) -> Value {
    Value::Object(list.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn job_id() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "The job's id: 1 to 128 characters of A-Z a-z 0-9 . _ : -",
        "schema": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$" }
    })
}

/// The OpenAPI 3.0 document of the agent's API.
pub fn openapi() -> Value {
    let bad_request = || ("400", error_response("Malformed request: the message names the field."));
    let mut begin = responses(vec![
        ("201", json_response("The job has begun.", "JobBegun")),
        bad_request(),
        ("409", error_response("A job with this id is known already, or the table is full.")),
        ("413", error_response("The body is larger than 64 KiB.")),
        (
            "503",
            error_response(
                "The job windows could not be saved in the state directory; nothing was changed.",
            ),
        ),
    ]);
    let mut end = responses(vec![
        ("200", json_response("The job has ended; its result on this node.", "JobResult")),
        bad_request(),
        ("404", error_response("No job with this id on this node.")),
        ("409", error_response("The job has already ended.")),
        (
            "503",
            error_response(
                "The job windows could not be saved in the state directory; nothing was changed.",
            ),
        ),
    ]);
    let mut set = responses(vec![
        ("200", json_response("What was written (or, with dry_run, would be).", "CapResult")),
        bad_request(),
        ("413", error_response("The body is larger than 64 KiB.")),
        (
            "422",
            error_response(
                "The node or its hardware cannot do it (out of range, locked, no such domain, refused by the hardware; all rolled back).",
            ),
        ),
        ("503", error_response("Capping is not configured, or too few samples for a node cap.")),
    ]);
    let mut reset = responses(vec![
        ("200", json_response("What was restored.", "CapResult")),
        ("422", error_response("Some limits could not be restored (they stay in the journal).")),
        ("503", error_response("Capping is not configured on this agent.")),
    ]);
    for r in [&mut begin, &mut end, &mut set, &mut reset] {
        if let Value::Object(m) = r {
            for (k, v) in write_errors() {
                m.insert(k.to_string(), v);
            }
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "powerstack agent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The node agent of powerstack: power and energy from its sample ring, job windows, power caps, Prometheus metrics. Reads are open; writes (POST) need root or an allowed user/group on the Unix socket, or a bearer token over TCP. See docs/api.md."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "Over TCP only. On the Unix socket the caller is identified by SO_PEERCRED." }
            },
            "schemas": schemas()
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness, and how many samples the ring holds.",
                    "operationId": "healthz",
                    "responses": { "200": json_response("The agent is up.", "Health") }
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus text exposition (version 0.0.4).",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "The metrics.",
                            "content": { "text/plain": { "schema": { "type": "string" } } }
                        }
                    }
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "operationId": "openapi",
                    "responses": {
                        "200": { "description": "OpenAPI 3.0.", "content": { "application/json": { "schema": { "type": "object" } } } }
                    }
                }
            },
            "/v1/power": {
                "get": {
                    "summary": "Node power now: the newest sample against the one about a second earlier.",
                    "operationId": "power",
                    "parameters": [{
                        "name": "format", "in": "query", "required": false,
                        "schema": { "type": "string", "enum": ["json", "variorum", "variorum-flat"], "default": "json" },
                        "description": "json: powerstack.power.v1; variorum: Variorum 0.8 nested power JSON; variorum-flat: Variorum's older flat JSON."
                    }],
                    "responses": responses(vec![
                        ("200", json_response("Node power.", "Power")),
                        bad_request(),
                        ("503", error_response("Fewer than 2 samples yet.")),
                    ])
                }
            },
            "/v1/samples": {
                "get": {
                    "summary": "Raw samples from the ring: a time and one extended counter per domain.",
                    "operationId": "samples",
                    "parameters": [
                        { "name": "since", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 }, "description": "µs since the Unix epoch (included); default 0. Must not be after `until` (400 otherwise)." },
                        { "name": "until", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 }, "description": "µs since the Unix epoch (included); default: no bound. Must not be before `since` (400 otherwise)." },
                        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 100000, "default": 10000 }, "description": "Most samples answered (the oldest of the range)." }
                    ],
                    "responses": responses(vec![
                        ("200", json_response("The samples.", "Samples")),
                        bad_request(),
                    ])
                }
            },
            "/v1/jobs": {
                "get": {
                    "summary": "Every job window kept on this node, by begin time.",
                    "operationId": "listJobs",
                    "responses": { "200": json_response("The jobs.", "Jobs") }
                }
            },
            "/v1/jobs/{id}": {
                "get": {
                    "summary": "A job's power and energy on this node.",
                    "operationId": "getJob",
                    "parameters": [job_id()],
                    "responses": responses(vec![
                        ("200", json_response("The job's result.", "JobResult")),
                        bad_request(),
                        ("404", error_response("No job with this id on this node.")),
                    ])
                }
            },
            "/v1/jobs/{id}/begin": {
                "post": {
                    "summary": "Marks the beginning of a job now (the agent's clock).",
                    "operationId": "beginJob",
                    "security": [{ "bearer": [] }],
                    "parameters": [job_id()],
                    "requestBody": {
                        "required": false,
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/JobBegin" } } }
                    },
                    "responses": begin
                }
            },
            "/v1/jobs/{id}/end": {
                "post": {
                    "summary": "Marks the end of a job now; answers its result.",
                    "operationId": "endJob",
                    "security": [{ "bearer": [] }],
                    "parameters": [job_id()],
                    "responses": end
                }
            },
            "/v1/caps": {
                "get": {
                    "summary": "Every power limit, read from the hardware now, its range, and who set it.",
                    "operationId": "getCaps",
                    "responses": responses(vec![
                        ("200", json_response("The limits (powerstack.caps.v1).", "Caps")),
                        ("503", error_response("Capping is not configured on this agent.")),
                    ])
                },
                "post": {
                    "summary": "Sets one domain's limit, or a node cap; validated, journaled, read back, rolled back on failure.",
                    "operationId": "setCap",
                    "security": [{ "bearer": [] }],
                    "requestBody": {
                        "required": true,
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CapRequest" } } }
                    },
                    "responses": set
                }
            },
            "/v1/caps/reset": {
                "post": {
                    "summary": "Restores every journaled limit to what it was before powerstack first wrote it.",
                    "operationId": "resetCaps",
                    "security": [{ "bearer": [] }],
                    "responses": reset
                }
            }
        }
    })
}

fn schemas() -> Value {
    let num = json!({ "type": "number" });
    let num_null = json!({ "type": "number", "nullable": true });
    let str_null = json!({ "type": "string", "nullable": true });
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "message"],
                    "properties": {
                        "status": { "type": "integer" },
                        "message": { "type": "string" }
                    }
                }
            }
        },
        "Health": {
            "type": "object",
            "required": ["status", "samples"],
            "properties": { "status": { "type": "string", "enum": ["ok"] }, "samples": { "type": "integer" } }
        },
        "Power": {
            "description": "powerstack.power.v1 (format=json; see docs/formats.md), or a Variorum document.",
            "type": "object",
            "additionalProperties": true
        },
        "Samples": {
            "type": "object",
            "required": ["hostname", "domains", "samples", "truncated"],
            "properties": {
                "hostname": { "type": "string" },
                "domains": {
                    "type": "array",
                    "description": "The ring's columns, in order.",
                    "items": {
                        "type": "object",
                        "required": ["domain", "index", "provider", "joules_per_tick"],
                        "properties": {
                            "domain": { "type": "string" },
                            "index": { "type": "integer" },
                            "die": { "type": "integer" },
                            "provider": { "type": "string" },
                            "joules_per_tick": num
                        }
                    }
                },
                "samples": {
                    "type": "array",
                    "description": "[t (µs since the epoch), tick0, tick1, ...] per sample, oldest first; a column whose domain could never be read is null in every row.",
                    "items": { "type": "array", "items": { "type": "integer", "nullable": true } }
                },
                "truncated": { "type": "boolean", "description": "More samples are in the range than were answered." }
            }
        },
        "JobBegin": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "user": label(),
                "app": label()
            }
        },
        "Job": {
            "type": "object",
            "required": ["id", "begin_unix_us"],
            "properties": {
                "id": { "type": "string" },
                "user": str_null,
                "app": str_null,
                "begin_unix_us": { "type": "integer" },
                "end_unix_us": { "type": "integer", "nullable": true }
            }
        },
        "JobBegun": {
            "allOf": [
                { "$ref": "#/components/schemas/Job" },
                { "type": "object", "properties": { "warnings": { "type": "array", "items": { "type": "string" } } } }
            ]
        },
        "Jobs": {
            "type": "object",
            "required": ["hostname", "jobs"],
            "properties": {
                "hostname": { "type": "string" },
                "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } }
            }
        },
        "JobResult": {
            "description": "One node's power and energy over a job window; also cpu_power_N, mem_power_N, gpu_power_N (W, -1.0 when unmeasured).",
            "type": "object",
            "required": ["hostname", "job_id", "running", "node_power", "energy_joules", "peak_node_power", "peak_window_s", "result_start_time", "result_end_time", "samples", "data_presence"],
            "properties": {
                "hostname": { "type": "string" },
                "job_id": { "type": "string" },
                "user": str_null,
                "app": str_null,
                "running": { "type": "boolean" },
                "node_power": num,
                "energy_joules": num,
                "peak_node_power": { "type": "number", "description": "The highest mean node power over any peak_window_s of the covered part, W." },
                "peak_window_s": { "type": "number", "description": "The window of the peak, s: the one asked for (default 1 s), never shorter than the sampling interval or the slowest node part's update period." },
                "result_start_time": { "type": "integer" },
                "result_end_time": { "type": "integer" },
                "samples": { "type": "integer" },
                "data_presence": { "type": "string", "enum": ["Complete", "Partial", "None"] },
                "gaps": {
                    "description": "Where no agent measured while the job ran (it was restarted), oldest first; absent when none.",
                    "type": "array",
                    "items": { "$ref": "#/components/schemas/JobGap" }
                }
            },
            "additionalProperties": { "type": "number" }
        },
        "JobGap": {
            "type": "object",
            "required": ["start_unix_us", "end_unix_us", "cause"],
            "properties": {
                "start_unix_us": { "type": "integer" },
                "end_unix_us": { "type": "integer" },
                "cause": { "type": "string", "enum": ["agent restarted", "agent killed or crashed"] }
            }
        },
        "CapRequest": {
            "description": "Either one domain's limit or a node cap. A field given as null is taken as absent.",
            "oneOf": [
                { "$ref": "#/components/schemas/DomainCapRequest" },
                { "$ref": "#/components/schemas/NodeCapRequest" }
            ]
        },
        "DomainCapRequest": {
            "description": "One domain's limit: every domain of the kind, or the one at `index` (and `die`).",
            "type": "object",
            "additionalProperties": false,
            "required": ["domain", "limit_watts"],
            "properties": {
                "domain": { "type": "string", "enum": ["node", "platform", "package", "core", "uncore", "memory", "gpu"] },
                "index": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                "die": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                "constraint": { "type": "string", "description": "long_term, short_term, peak_power or cap; default long_term (package, memory) or cap (gpu)." },
                "limit_watts": num,
                "time_window_s": num,
                "clamp": { "type": "boolean", "default": false },
                "dry_run": { "type": "boolean", "default": false }
            }
        },
        "NodeCapRequest": {
            "description": "A node cap, split over every cappable domain by `policy`.",
            "type": "object",
            "additionalProperties": false,
            "required": ["node_watts"],
            "properties": {
                "node_watts": { "type": "number", "minimum": 0, "exclusiveMinimum": true },
                "policy": { "type": "string", "enum": ["proportional", "uniform", "variorum"], "default": "proportional" },
                "clamp": { "type": "boolean", "default": false },
                "dry_run": { "type": "boolean", "default": false }
            }
        },
        "CapResult": {
            "description": "powerstack.cap.v1 (see docs/formats.md).",
            "type": "object",
            "required": ["schema", "hostname", "command", "dry_run", "writes"],
            "properties": {
                "schema": { "type": "string", "enum": ["powerstack.cap.v1"] },
                "hostname": { "type": "string" },
                "simulated": { "type": "boolean" },
                "simulated_profile": str_null,
                "command": { "type": "string" },
                "dry_run": { "type": "boolean" },
                "policy": str_null,
                "node_cap_watts": num_null,
                "uncappable_watts": num_null,
                "clamped": { "type": "boolean" },
                "writes": { "type": "array", "items": { "type": "object" } },
                "recovered": { "type": "array", "items": { "type": "string" } },
                "warnings": { "type": "array", "items": { "type": "string" } }
            }
        },
        "Caps": {
            "description": "powerstack.caps.v1 (see docs/formats.md).",
            "type": "object",
            "required": ["schema", "hostname", "controls"],
            "properties": {
                "schema": { "type": "string", "enum": ["powerstack.caps.v1"] },
                "hostname": { "type": "string" },
                "controls": { "type": "array", "items": { "type": "object" } },
                "warnings": { "type": "array", "items": { "type": "string" } }
            }
        }
    })
}
