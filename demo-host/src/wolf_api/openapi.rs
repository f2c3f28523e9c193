//! `GET /api/v1/openapi-schema`: a small static OpenAPI 3.1 description of the endpoints.
//!
//! Wolf generates its schema from its C++ types; ours is written by hand and only names the
//! endpoints, their bodies' required fields and the reply envelopes. The module docs of
//! [`super`] are the full reference.

use serde_json::{json, Value};

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

fn generic() -> Value {
    json!({
        "200": {"description": "success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenericSuccessResponse"}}}},
        "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenericErrorResponse"}}}}
    })
}

fn reply_with(key: &str, schema: Value) -> Value {
    json!({
        "200": {"description": "success", "content": {"application/json": {"schema":
            obj(&["success", key], json!({"success": {"type": "boolean"}, key: schema}))}}},
        "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenericErrorResponse"}}}}
    })
}

fn get_op(summary: &str, responses: Value) -> Value {
    json!({"get": {"summary": summary, "responses": responses}})
}

fn post_op(summary: &str, body: Value, responses: Value) -> Value {
    json!({"post": {"summary": summary,
        "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
        "responses": responses}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn arr(item: Value) -> Value {
    json!({"type": "array", "items": item})
}

/// The document.
pub(crate) fn schema() -> Value {
    let s = json!({"type": "string"});
    let sid = json!({"type": "string", "description": "64-bit session id as a decimal string"});
    let pin =
        json!({"type": "array", "items": {"type": "integer"}, "description": "lobby PIN digits"});
    let mic_fields = json!({"success": {"type": "boolean"}, "session_id": sid,
        "packets": {"type": "integer"}, "undecodable": {"type": "integer"},
        "lost": {"type": "integer"}, "pitch_hz": {"type": "number"}});
    let mic_reply = obj(
        &["success", "session_id", "packets", "pitch_hz"],
        mic_fields,
    );
    let mic = json!({"get": {"summary": "A session's microphone sink: packets and dominant pitch (moongate, fork mode)",
        "parameters": [{"name": "session_id", "in": "query", "required": true, "schema": sid}],
        "responses": {"200": {"description": "success", "content": {"application/json": {"schema": mic_reply}}},
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenericErrorResponse"}}}}}}});
    let mut faults = get_op(
        "Read the fault knobs (moongate)",
        reply_with("faults", r("FaultKnobs")),
    );
    faults["post"] = post_op(
        "Change some fault knobs (moongate)",
        r("FaultKnobs"),
        reply_with("faults", r("FaultKnobs")),
    )["post"]
        .clone();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Wolf API (moongate demo host)", "version": "0.1.0"},
        "paths": {
            "/api/v1/events": {"get": {"summary": "Subscribe to host events (SSE: `event: <C++ type>` + `data: <json>`, `:keepalive` every 15 s)",
                "responses": {"200": {"description": "event stream", "content": {"text/event-stream": {}}}}}},
            "/api/v1/pair/pending": get_op("Clients waiting for a PIN", reply_with("requests", arr(r("PendingPairClient")))),
            "/api/v1/pair/client": post_op("Pair a client", obj(&["pair_secret", "pin"], json!({"pair_secret": s, "pin": s})), generic()),
            "/api/v1/unpair/client": post_op("Unpair a client", obj(&["client_id"], json!({"client_id": s})), generic()),
            "/api/v1/clients": get_op("Paired clients", reply_with("clients", arr(r("PairedClient")))),
            "/api/v1/apps": get_op("Moonlight apps", reply_with("apps", arr(r("App")))),
            "/api/v1/apps/add": post_op("Add an app", r("App"), generic()),
            "/api/v1/apps/delete": post_op("Remove an app", obj(&["id"], json!({"id": s})), generic()),
            "/api/v1/sessions": get_op("Stream sessions", reply_with("sessions", arr(r("StreamSession")))),
            "/api/v1/sessions/add": post_op("Create a stream session", r("StreamSession"), reply_with("session_id", sid.clone())),
            "/api/v1/sessions/stop": post_op("Stop a stream session", obj(&["session_id"], json!({"session_id": sid})), generic()),
            "/api/v1/lobbies": get_op("Lobbies", reply_with("lobbies", arr(r("Lobby")))),
            "/api/v1/lobbies/create": post_op("Create a lobby", r("CreateLobbyRequest"), reply_with("lobby_id", s.clone())),
            "/api/v1/lobbies/join": post_op("Join a lobby", obj(&["lobby_id", "moonlight_session_id"], json!({"lobby_id": s, "moonlight_session_id": sid, "pin": pin})), generic()),
            "/api/v1/lobbies/leave": post_op("Leave a lobby", obj(&["lobby_id", "moonlight_session_id"], json!({"lobby_id": s, "moonlight_session_id": sid})), generic()),
            "/api/v1/lobbies/stop": post_op("Stop a lobby", obj(&["lobby_id"], json!({"lobby_id": s, "pin": pin})), generic()),
            "/api/v1/openapi-schema": get_op("This document", json!({"200": {"description": "OpenAPI JSON"}})),
            "/api/v1/moongate/input": {"get": {"summary": "Decoded input events of a session (moongate)",
                "parameters": [
                    {"name": "session_id", "in": "query", "required": true, "schema": sid},
                    {"name": "since", "in": "query", "required": false, "schema": {"type": "integer"}}
                ],
                "responses": reply_with("events", arr(r("InputRecord")))}},
            "/api/v1/moongate/faults": faults,
            "/api/v1/moongate/strict": get_op("Wolf-strict mode and its violation counter (moongate)", reply_with("strict", r("StrictStatus"))),
            "/api/v1/moongate/mic": mic
        },
        "components": {"schemas": {
            "GenericSuccessResponse": obj(&["success"], json!({"success": {"type": "boolean"}})),
            "GenericErrorResponse": obj(&["success", "error"], json!({"success": {"type": "boolean"}, "error": s})),
            "PendingPairClient": obj(&["pair_secret", "client_ip"], json!({"pair_secret": s, "client_ip": s})),
            "ClientSettings": obj(&[], json!({"run_uid": {"type": "integer"}, "run_gid": {"type": "integer"},
                "controllers_override": arr(s.clone()), "mouse_acceleration": {"type": "number"},
                "v_scroll_acceleration": {"type": "number"}, "h_scroll_acceleration": {"type": "number"}})),
            "PairedClient": obj(&["client_id", "app_state_folder", "settings"], json!({"client_id": s, "app_state_folder": s, "settings": r("ClientSettings")})),
            "Runner": {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["process", "docker", "child_session"]}}},
            "App": obj(&["title", "id"], json!({"title": s, "id": s, "support_hdr": {"type": "boolean"}, "icon_png_path": s,
                "h264_gst_pipeline": s, "hevc_gst_pipeline": s, "av1_gst_pipeline": s, "render_node": s, "opus_gst_pipeline": s,
                "start_virtual_compositor": {"type": "boolean"}, "start_audio_server": {"type": "boolean"}, "runner": r("Runner")})),
            "StreamSession": obj(&["video_width", "video_height", "video_refresh_rate", "audio_channel_count"], json!({
                "client_ip": s, "aes_key": s, "aes_iv": s, "rtsp_fake_ip": s,
                "video_width": {"type": "integer"}, "video_height": {"type": "integer"}, "video_refresh_rate": {"type": "integer"},
                "audio_channel_count": {"type": "integer"}, "app_id": s, "client_id": s, "client_settings": r("ClientSettings"),
                "client_unique_id": s, "idle_seconds": {"type": "integer"}, "immediate_lobby_id": s})),
            "Lobby": obj(&["id", "name", "multi_user", "started_by_profile_id", "pin_required", "stop_when_everyone_leaves", "runner", "connected_sessions"], json!({
                "id": s, "name": s, "icon_png_path": s, "multi_user": {"type": "boolean"}, "started_by_profile_id": s,
                "pin_required": {"type": "boolean"}, "stop_when_everyone_leaves": {"type": "boolean"}, "runner": r("Runner"),
                "connected_sessions": arr(s.clone())})),
            "CreateLobbyRequest": obj(&["name", "video_settings", "audio_settings"], json!({
                "profile_id": s, "name": s, "icon_png_path": s, "multi_user": {"type": "boolean"}, "pin": pin,
                "stop_when_everyone_leaves": {"type": "boolean"},
                "video_settings": obj(&["width", "height", "refresh_rate"], json!({"width": {"type": "integer"}, "height": {"type": "integer"},
                    "refresh_rate": {"type": "integer"}, "wayland_render_node": s, "runner_render_node": s, "video_producer_buffer_caps": s})),
                "audio_settings": obj(&["channel_count"], json!({"channel_count": {"type": "integer"}})),
                "client_settings": {"type": "object"}, "runner_state_folder": s, "runner": r("Runner")})),
            "InputRecord": obj(&["seq", "at_ms", "event"], json!({"seq": {"type": "integer"}, "at_ms": {"type": "integer"},
                "event": {"type": "object", "required": ["type"], "properties": {"type": s}}})),
            "StrictStatus": obj(&["wolf_strict", "disconnects_after_cancel"], json!({"wolf_strict": {"type": "boolean"}, "disconnects_after_cancel": {"type": "integer"}})),
            "FaultKnobs": obj(&[], json!({"drop_pct": {"type": "number"}, "reorder_pct": {"type": "number"}, "corrupt_pct": {"type": "number"}, "delay_pct": {"type": "number"},
                "delay_ms": {"type": "integer"}, "slow_teardown_ms": {"type": "integer"}, "refuse_launches": {"type": "boolean"}, "crash": {"type": "boolean"}}))
        }}
    })
}
