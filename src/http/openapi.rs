//! The OpenAPI 3.1 document of `/api/v1` and of the webhook payloads, served at
//! `/api/v1/openapi.json`. CI validates it and runs Schemathesis against the live server,
//! so every answer the API gives must be described here.

use serde_json::{Value, json};

use crate::db::events::EventType;
use crate::model::{MemberSource, MemberStatus, TextEnum};

fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

fn names<T: TextEnum>() -> Vec<&'static str> {
    T::ALL.iter().map(|v| v.as_str()).collect()
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn ok(schema: &str) -> Value {
    json!({
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn list_parameters() -> Vec<Value> {
    vec![
        json!({"name": "limit", "in": "query", "description": "Items per page (default 10).",
               "schema": {"type": "integer", "minimum": 1, "maximum": 100}}),
        json!({"name": "after", "in": "query", "description": "The page after this cursor (`list_metadata.after`).",
               "schema": {"type": "string"}}),
        json!({"name": "before", "in": "query", "description": "The page before this cursor (`list_metadata.before`).",
               "schema": {"type": "string"}}),
    ]
}

fn tenant_parameter() -> Value {
    json!({"name": "tenant", "in": "query",
           "description": "The tenant to read, for a key of every tenant (ignored otherwise).",
           "schema": {"type": "string"}})
}

fn id_parameter(what: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": format!("The {what}'s id."),
           "schema": {"type": "string"}})
}

fn operation(
    summary: &str,
    parameters: Vec<Value>,
    ok_schema: &str,
    extra: &[(&str, Value)],
) -> Value {
    let mut responses = json!({
        "200": ok(ok_schema),
        "400": error_response("A parameter is invalid."),
        "401": error_response("No valid API key."),
        "404": error_response("No such resource or tenant."),
        "429": error_response("Too many failed authentications from this address; see Retry-After."),
    });
    for (status, r) in extra {
        responses[*status] = r.clone();
    }
    json!({"get": {"summary": summary, "parameters": parameters, "responses": responses}})
}

/// The document.
pub(super) fn document() -> Value {
    let mut member_params = list_parameters();
    member_params.extend([
        json!({"name": "status", "in": "query", "schema": {"type": "string", "enum": names::<MemberStatus>()}}),
        json!({"name": "role", "in": "query", "description": "A role's slug.", "schema": {"type": "string"}}),
        json!({"name": "group", "in": "query", "description": "Members of this directory group (its id).", "schema": {"type": "string"}}),
        json!({"name": "email", "in": "query", "description": "This email, in any case.", "schema": {"type": "string"}}),
        json!({"name": "updated_since", "in": "query", "description": "Changed at or after this RFC 3339 time.",
               "schema": {"type": "string", "format": "date-time"}}),
        tenant_parameter(),
    ]);
    let mut paged = list_parameters();
    paged.push(tenant_parameter());
    let mut group_members = paged.clone();
    group_members.insert(0, id_parameter("group"));
    let event_types = names::<EventType>();
    let events_params = vec![
        json!({"name": "after", "in": "query", "description": "Events after this seq. Omitted: from the oldest event kept. A seq older than that answers 410 cursor_expired: events were purged unseen, list again.",
               "schema": {"type": "integer", "minimum": 0}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}),
        json!({"name": "types", "in": "query", "description": "Comma-separated event types.",
               "schema": {"type": "string"}}),
        json!({"name": "wait", "in": "query", "description": "Seconds to wait for an event when there is none yet.",
               "schema": {"type": "integer", "minimum": 0, "maximum": 60}}),
        json!({"name": "Last-Event-ID", "in": "header", "description": "Resume a stream after this seq.",
               "schema": {"type": "integer", "minimum": 0}}),
        tenant_parameter(),
    ];
    let list_of = |item: &str| {
        json!({
            "type": "object",
            "required": ["object", "data", "list_metadata"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
                "list_metadata": {"$ref": "#/components/schemas/ListMetadata"},
            }
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "scimd apps API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What the organisation's apps read from scimd: members with their roles, groups, role settings, and every change as an ordered events feed (also delivered as signed webhooks).",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/api/v1/members": operation("List members", member_params, "MemberList", &[]),
            "/api/v1/members/{id}": operation("Get a member", vec![id_parameter("member"), tenant_parameter()], "Member", &[]),
            "/api/v1/groups": operation("List groups", paged.clone(), "GroupList", &[]),
            "/api/v1/groups/{id}": operation("Get a group", vec![id_parameter("group"), tenant_parameter()], "Group", &[]),
            "/api/v1/groups/{id}/members": operation("List a group's direct members", group_members, "GroupMemberList", &[]),
            "/api/v1/roles": operation("The roles, default role and mappings", vec![tenant_parameter()], "Roles", &[]),
            "/api/v1/events": operation("Follow the events feed", events_params, "EventList", &[
                ("410", error_response("The cursor is older than the events kept: list again and follow from the list's events_cursor.")),
            ]),
        },
        "webhooks": {
            "event": {"post": {
                "summary": "A change, delivered to a webhook endpoint (Standard Webhooks 1.0: webhook-id, webhook-timestamp, webhook-signature).",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}},
                "responses": {"2XX": {"description": "Delivered; anything else is retried."}},
            }}
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An app API key (scimd_key_…)."}},
            "schemas": {
                "Error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}},
                "ListMetadata": {"type": "object", "required": ["before", "after", "events_cursor"], "properties": {
                    "before": nullable("string"), "after": nullable("string"),
                    "events_cursor": {"type": "integer", "description": "The newest event seq when the page was read. After listing every page, follow the feed from the first page's events_cursor: no change is missed (changes made while paging may arrive again)."}}},
                "Member": {"type": "object", "required": ["object", "id", "role", "status", "managed", "source", "attributes", "groups", "created_at", "updated_at"], "properties": {
                    "object": {"const": "member"},
                    "id": {"type": "string"},
                    "email": nullable("string"), "user_name": nullable("string"),
                    "given_name": nullable("string"), "family_name": nullable("string"), "display_name": nullable("string"),
                    "role": {"type": "string"}, "role_reason": {"type": "string"},
                    "status": {"type": "string", "enum": names::<MemberStatus>()},
                    "managed": {"type": "boolean"},
                    "source": {"type": "string", "enum": names::<MemberSource>()},
                    "directory_user_id": nullable("string"), "external_id": nullable("string"),
                    "attributes": {"type": "object", "description": "What the directory says of the person in the organisation, under SCIM's names: title, userType, and the enterprise extension's employeeNumber, costCenter, organization, division, department, and manager (the manager's directory user id). Only those it has; {} without a directory user."},
                    "groups": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "display_name": {"type": "string"}}}},
                    "delete_after": {"type": ["string", "null"], "description": "Suspended by the deletion grace period: deleted at this time unless reactivated first."},
                    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}},
                "MemberList": list_of("Member"),
                "Group": {"type": "object", "required": ["object", "id", "display_name", "members_count"], "properties": {
                    "object": {"const": "group"}, "id": {"type": "string"}, "display_name": {"type": "string"},
                    "members_count": {"type": "integer"}, "external_id": {}, "created_at": {"type": "string"},
                    "updated_at": {"type": "string"}}},
                "GroupList": list_of("Group"),
                "GroupMember": {"type": "object", "required": ["object", "type", "id"], "properties": {
                    "object": {"const": "group_member"}, "type": {"type": "string", "enum": ["user", "group"]},
                    "id": {"type": "string"}, "display": {"type": "string"}, "user_name": nullable("string"),
                    "member_id": nullable("string"), "role": nullable("string"), "status": nullable("string")}},
                "GroupMemberList": list_of("GroupMember"),
                "Roles": {"type": "object", "required": ["roles", "default_role", "role_prefix", "mappings"], "properties": {
                    "object": {"const": "roles"},
                    "roles": {"type": "array", "items": {"type": "object", "properties": {
                        "slug": {"type": "string"}, "reserved_group": {"type": "string"}}}},
                    "default_role": {"type": "string"}, "role_prefix": {"type": "string"},
                    "mappings": {"type": "array", "items": {"type": "object", "properties": {
                        "group": {"type": "string"}, "role": {"type": "string"}}}}}},
                "Event": {"type": "object", "required": ["object", "id", "seq", "type", "timestamp", "data", "previous", "context"], "properties": {
                    "object": {"const": "event"},
                    "id": {"type": "string", "description": "Unique; the webhook-id of its deliveries."},
                    "seq": {"type": "integer", "description": "The tenant's gap-free, strictly increasing number."},
                    "type": {"type": "string", "enum": event_types},
                    "timestamp": {"type": "string"},
                    "data": {"description": "The member or group after the change (as it was last, for a deletion): a Member, or for group.created|updated|deleted {object: group, id, display_name, external_id}; for group.member_added|member_removed {group: {object, id, display_name, external_id (as it was then; absent from events stored before 2026-12)}, user: {id (the directory user), user_name, external_id, member_id (its member, null when it has none)}}; for deprovisioning.* events, the hold: id, state (held, rejected, approved, cleared), held (members), threshold, active_members, decided_by."},
                    "previous": {"type": "object", "description": "The values the change replaced."},
                    "context": {"type": "object", "properties": {
                        "actor": nullable("string"), "request_id": nullable("string"),
                        "via": {"type": "string", "description": "scim, force_sync, settings, csv_import, admin, or guard (a held deprovisioning an admin approved)."}}}}},
                "EventList": {"type": "object", "required": ["object", "data", "list_metadata"], "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "list_metadata": {"type": "object", "required": ["after", "events_cursor"], "properties": {
                        "after": {"type": "integer", "description": "Ask with this next: the last event's seq when the page is full, else past every event the page looked at (those `types` skipped too)."},
                        "events_cursor": {"type": "integer"}}}}},
            }
        }
    })
}
